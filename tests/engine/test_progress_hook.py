"""RichProgressHook: an iteration loop's bar counts its steps, across validations."""

from types import SimpleNamespace

from mmengine.runner import IterBasedTrainLoop

from adtool.engine.hooks import RichProgressHook


def _runner(max_iters: int, n_batches: int) -> SimpleNamespace:
    loop = object.__new__(IterBasedTrainLoop)  # only its type and max_iters are read
    loop._max_iters = max_iters
    loop.dataloader = [None] * n_batches
    val = SimpleNamespace(dataloader=[None] * 3)
    return SimpleNamespace(train_loop=loop, val_loop=val, iter=0, epoch=0)


def _bar(hook: RichProgressHook) -> tuple[str, float, float]:
    task = hook._progress.tasks[0]
    return task.description, task.completed, task.total


def test_iteration_loop_bar_counts_steps_and_survives_validation():
    hook, runner = RichProgressHook(transient=True), _runner(max_iters=20, n_batches=5)
    hook.before_train_epoch(runner)
    assert _bar(hook) == ("train", 0, 20)  # not one pass over the 5 batches
    for i in range(10):
        hook.after_train_iter(runner, i)
        runner.iter += 1
    hook.before_val_epoch(runner)
    assert _bar(hook) == ("validate", 0, 3)
    hook.after_val_epoch(runner)
    assert _bar(hook) == ("train", 10, 20)  # training goes on where it was
    hook.after_train_epoch(runner)
    assert hook._progress is None


def test_epoch_loop_bar_counts_one_pass():
    hook = RichProgressHook(transient=True)
    loop = SimpleNamespace(dataloader=[None] * 5)
    runner = SimpleNamespace(train_loop=loop, iter=0, epoch=2)
    hook.before_train_epoch(runner)
    assert _bar(hook) == ("train epoch 3", 0, 5)
    hook.after_train_epoch(runner)
