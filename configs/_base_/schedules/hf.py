# HuggingFace task models: mmengine's epoch loop, then one test on the val split by
# tools/train.py (adtool.apis.tasks.run_task). Validation after every epoch is on the same
# val split; a config sets val_dataloader/val_cfg/val_evaluator = None to skip it (the
# tiny configs do: the final test gives the same numbers). The last checkpoint is tested.
_base_ = "../default_runtime.py"

train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=10, val_interval=1)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")

default_hooks = dict(
    logger=dict(type="LoggerHook", interval=10),
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=1),
)
