# Memory-bank and statistical models: one pass over the training set, then fit().
# No optimiser: AnomalyRunner supplies a placeholder that never steps. A model config
# using this schedule sets val_dataloader/val_evaluator = None (nothing to validate).
train_cfg = dict(type="FitLoop")
test_cfg = dict(type="TestLoop")
