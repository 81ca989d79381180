# Models trained by gradient: mmengine's epoch loop, validation on the test split after
# every epoch with the anomaly metrics, the best checkpoint by image AUROC kept next to
# the last one. A model config adds optim_wrapper (and param_scheduler) from its paper.
# tools/train.py tests the final weights; set test_from = "best" to test best_*.pth.
# The validation split is the test split (MVTec AD has no other); selecting a checkpoint
# on it reports an optimistic number, which is why "last" is the default.
_base_ = "../default_runtime.py"

train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=100, val_interval=1)
# Validation computes only what the checkpoint / early-stop rules monitor (image_AUROC by
# default): no AUPRO, thresholds, tables or maps; the full report runs once at test.
# metrics="all" validates with the full report; extra_metrics=["pixel_AUROC"] logs more.
val_cfg = dict(type="AnomalyValLoop", metrics="monitored")
test_cfg = dict(type="TestLoop")
test_from = "last"

default_hooks = dict(
    checkpoint=dict(
        type="AnomalyCheckpointHook",
        interval=1,
        max_keep_ckpts=1,
        save_best="image_AUROC",
        rule="greater",
    ),
)

# Training caches (adtool.engine.TrainingCacheHook; docs/internals.md, Engine): 'auto'
# computes a frozen teacher's / extractor's features once when no train transform is
# random, and decodes and resizes each training image once. Past max_memory_mb the
# features go to memory-mapped files under spill_dir (None: the work dir), deleted after.
feature_cache = dict(enabled="auto", max_memory_mb=2048, spill_dir=None)
decode_cache = dict(enabled="auto", max_memory_mb=1024)
