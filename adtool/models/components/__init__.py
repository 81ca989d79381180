from .blur import gaussian_blur
from .coreset import coverage_radius, greedy_coreset, random_projection
from .knn import nearest_neighbors

__all__ = [
    "coverage_radius",
    "gaussian_blur",
    "greedy_coreset",
    "nearest_neighbors",
    "random_projection",
]
