"""mmengine 0.10.x on torch >= 2.6: resume works (weights-only loading), writes are atomic."""

import os

import pytest
import torch
from mmengine.model import BaseModel
from torch.utils.data import DataLoader, TensorDataset

from adtool.engine import AnomalyRunner
from adtool.engine.compat import AtomicLocalBackend, load_checkpoint_file
from adtool.fileio import atomic_write_bytes


class _Regressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x, y=None, mode="tensor"):
        out = self.linear(x)
        if mode == "loss":
            return {"loss": torch.nn.functional.mse_loss(out, y)}
        return out


def _collate(batch):
    xs, ys = zip(*batch)
    return {"x": torch.stack(xs), "y": torch.stack(ys)}


def _runner(work_dir, max_epochs, resume=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False, collate_fn=_collate)
    torch.manual_seed(0)  # same initial weights for every run
    return AnomalyRunner(
        model=_Regressor(),
        work_dir=str(work_dir),
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type="CheckpointHook", interval=1),
            logger=dict(type="LoggerHook", interval=100),
        ),
        randomness=dict(seed=0),
        resume=resume,
        log_level="ERROR",
        experiment_name=f"resume_{work_dir.name}_{max_epochs}_{resume}",
        default_scope="adtool",
    )


def test_stop_after_first_epoch_then_resume_matches_uninterrupted(tmp_path):
    full = _runner(tmp_path / "full", 3)
    full.train()
    first = _runner(tmp_path / "split", 1)
    first.train()
    assert (tmp_path / "split" / "epoch_1.pth").is_file()
    resumed = _runner(tmp_path / "split", 3, resume=True)
    resumed.train()
    assert resumed.epoch == 3
    w_full = full.model.linear.weight
    w_resumed = resumed.model.linear.weight
    # Momentum state was restored too: otherwise the weights would differ noticeably.
    assert torch.allclose(w_full, w_resumed, atol=1e-6)
    ckpt = load_checkpoint_file(tmp_path / "split" / "epoch_3.pth")
    assert ckpt["meta"]["epoch"] == 3 and "optimizer" in ckpt


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.pth"
    atomic_write_bytes(target, b"old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        AtomicLocalBackend().put(b"new-and-longer", target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"]
