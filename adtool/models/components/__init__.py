from .blur import gaussian_blur
from .coreset import coverage_radius, greedy_coreset, random_projection
from .gaussian import fit_gaussian, mahalanobis
from .knn import nearest_neighbors
from .pca import PCAFit, fit_pca, pca_inverse_transform, pca_transform
from .tiler import Tiler

__all__ = [
    "coverage_radius",
    "fit_gaussian",
    "fit_pca",
    "gaussian_blur",
    "greedy_coreset",
    "mahalanobis",
    "nearest_neighbors",
    "pca_inverse_transform",
    "pca_transform",
    "PCAFit",
    "random_projection",
    "Tiler",
]
