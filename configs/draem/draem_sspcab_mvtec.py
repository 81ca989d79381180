# DRAEM + SSPCAB (Ristea et al., CVPR 2022): the paper's DRAEM (draem_mvtec.py) with the last
# stage of the reconstructive encoder replaced by the self-supervised predictive convolutional
# attentive block, trained with its own MSE (weight 0.1) added to DRAEM's loss.
_base_ = "./draem_mvtec.py"
alias = ["draem-sspcab"]

model = dict(sspcab=True, sspcab_weight=0.1)

tiny_overrides = {
    "model.reconstructive_width": 8,
    "model.discriminative_width": 4,
    "model.score_kernel": 5,
}
