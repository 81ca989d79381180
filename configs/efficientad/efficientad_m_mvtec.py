# EfficientAD-M: the paper's medium PDN (teacher and student) and the same training as
# EfficientAD-S (efficientad_s_mvtec.py). Teacher: backbones/pdn_medium_effnetlite0.pth
# (`python tools/distill_teacher.py IMAGE_DIR --size medium`).
_base_ = "./efficientad_s_mvtec.py"
alias = ["efficientad-medium"]

model = dict(teacher=dict(size="medium"))

tiny_overrides = {
    "train_cfg.max_iters": 1,
    "param_scheduler.milestones": [1],
    "model.width": 0.25,
    "model.teacher.width": 0.25,
}
