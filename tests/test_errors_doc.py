"""tools/gen_errors_doc.py: its cases cover issue 11 and run (two fast ones run here)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gen_errors_doc as gen  # noqa: E402

sys.path.remove(str(ROOT / "tools"))


def test_cases_cover_every_item_once_by_id():
    ids = [c.id for c in gen.CASES]
    assert len(ids) == len(set(ids))
    covered = {c.item for c in gen.CASES} | set(gen.NOT_A_COMMAND)
    assert covered == set(range(1, 15))
    assert all(c.exit in (0, 1, 2) for c in gen.CASES)


def test_shown_command_hides_tiny_options_and_real_paths(tmp_path):
    ctx = {"data": (str(tmp_path / "d"), "data/sample"), "work": (str(tmp_path), "work_dirs/x")}
    case = next(c for c in gen.CASES if c.id == "model-type")
    shown = gen.command(case, ctx, shown=True)
    assert shown[:2] == ["python", "tools/train.py"] and "data/sample" in shown
    assert not any(str(tmp_path) in a for a in shown) and gen.TINY[0] not in shown
    real = gen.command(case, ctx)
    assert real[0] == sys.executable and gen.TINY[0] in real and str(tmp_path / "d") in real


@pytest.mark.parametrize(
    "case_id, needle",
    [
        ("option-without-equals", "is not KEY=VALUE"),
        ("model-type", "did you mean 'PatchCore'"),
    ],
)
def test_case_runs_and_ends_as_documented(case_id, needle, tiny_data, tmp_path):
    ctx = {
        "data": (str(tiny_data), "data/sample"),
        "work": (str(tmp_path / "work"), "work_dirs/x"),
        "tmp": (str(tmp_path), "<tmp>"),
    }
    case = next(c for c in gen.CASES if c.id == case_id)
    code, message = gen.run_case(case, ctx, timeout=300)
    assert code == case.exit == 2
    assert message.startswith("error:") and needle in message
    assert str(tmp_path) not in message
