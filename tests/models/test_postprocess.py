"""PostProcessor: thresholds and normalisation as buffers that travel with the model."""

import pytest
import torch

from adtool.models import PostProcessor
from adtool.models.postprocess import THRESHOLD_NAMES

VALUES = {"f1_percentile": 0.4, "f1_uniform": 0.45, "youden_j": None, "percentile_95": 0.3}


def test_thresholds_unset_then_set_and_read_back():
    post = PostProcessor()
    assert post.thresholds() is None
    post.set_thresholds(VALUES, "f1_percentile", pixel=0.7)
    record = post.thresholds()
    assert record["chosen"] == "f1_percentile"
    assert record["value"] == pytest.approx(0.4)
    assert record["pixel_threshold"] == pytest.approx(0.7)
    assert record["values"].keys() == set(THRESHOLD_NAMES)
    assert record["values"]["youden_j"] is None  # undefined stays None, not 0
    assert record["values"]["percentile_95"] == pytest.approx(0.3)
    # Setting again replaces everything, including a pixel threshold now unknown.
    post.set_thresholds({"youden_j": 2.0}, "youden_j")
    record = post.thresholds()
    assert record["value"] == 2.0 and record["pixel_threshold"] is None
    assert record["values"]["f1_percentile"] is None


def test_unknown_threshold_name_is_refused():
    with pytest.raises(ValueError, match="f1_percentil.*f1_percentile"):
        PostProcessor().set_thresholds({"f1_percentil": 1.0}, None)
    with pytest.raises(ValueError, match="best"):
        PostProcessor().set_thresholds(VALUES, "best")


def test_labels_use_score_at_or_above_the_chosen_threshold():
    post = PostProcessor()
    with pytest.raises(RuntimeError, match="no chosen threshold"):
        post.labels(torch.tensor([1.0]))
    post.set_thresholds(VALUES, "f1_uniform")
    labels = post.labels(torch.tensor([0.1, 0.45, 0.46, 0.449]))
    assert labels.dtype == torch.bool
    assert labels.tolist() == [False, True, True, False]


def test_normalised_threshold_is_one_half_and_values_are_clamped():
    post = PostProcessor()
    with pytest.raises(RuntimeError, match="normalisation"):
        post.normalize_scores(torch.tensor([1.0]))
    post.set_thresholds(VALUES, "f1_percentile", pixel=3.0)
    post.set_normalization(image_min=0.0, image_max=2.0, map_min=1.0, map_max=9.0)
    scores = post.normalize_scores(torch.tensor([0.4, 0.0, 1.4, 100.0, -100.0]))
    # (x - 0.4) / (2 - 0) + 0.5
    torch.testing.assert_close(scores, torch.tensor([0.5, 0.3, 1.0, 1.0, 0.0]))
    maps = post.normalize_maps(torch.tensor([[3.0, 5.0], [1.0, 50.0]]))
    # (x - 3) / (9 - 1) + 0.5
    torch.testing.assert_close(maps, torch.tensor([[0.5, 0.75], [0.25, 1.0]]))
    # Labels and normalised scores agree: at or above the threshold <=> >= 0.5.
    raw = torch.linspace(-1, 3, 41)
    assert torch.equal(post.labels(raw), post.normalize_scores(raw) >= 0.5)


def test_normalisation_without_threshold_is_min_max_and_maps_may_be_absent():
    post = PostProcessor()
    post.set_normalization(image_min=2.0, image_max=6.0, map_min=None, map_max=None)
    torch.testing.assert_close(
        post.normalize_scores(torch.tensor([2.0, 4.0, 6.0])), torch.tensor([0.0, 0.5, 1.0])
    )
    with pytest.raises(RuntimeError, match="map normalisation"):
        post.normalize_maps(torch.zeros(2, 2))


def test_state_dict_round_trip():
    post = PostProcessor()
    post.set_thresholds(VALUES, "percentile_95", pixel=0.25)
    post.set_normalization(0.1, 0.9, 0.0, 1.0)
    state = post.state_dict()
    assert all(not torch.isnan(v.float()).any() for v in state.values())  # weights compare
    other = PostProcessor()
    other.load_state_dict(state, strict=True)
    assert other.thresholds() == post.thresholds()
    torch.testing.assert_close(
        other.normalize_scores(torch.tensor([0.3, 0.7])),
        post.normalize_scores(torch.tensor([0.3, 0.7])),
    )


def test_state_dict_without_postprocessor_keys_loads_strictly_and_stays_unset():
    post = PostProcessor()
    post.set_thresholds(VALUES, "f1_percentile")
    post.load_state_dict({}, strict=True)  # a checkpoint from before the post-processor
    # Missing keys keep the current values (here: those just set), nothing is reset.
    assert post.thresholds()["chosen"] == "f1_percentile"
    fresh = PostProcessor()
    fresh.load_state_dict({}, strict=True)
    assert fresh.thresholds() is None and not fresh.has_normalization


def test_registered_for_configs():
    from adtool.registry import MODELS

    assert isinstance(MODELS.build(dict(type="PostProcessor")), PostProcessor)
