import re

import pytest
import torch

from m2pt.models.input_checks import check_finite_inputs

from .helpers import tiny_model

CASES = {
    "image": [
        ((2, 3, 28, 28), "image model expects input [B, 1, 28, 28], got [2, 3, 28, 28]"),
        ((2, 1, 32, 32), "image model expects input [B, 1, 28, 28], got [2, 1, 32, 32]"),
        ((1, 28, 28), "image model expects input [B, 1, 28, 28], got [1, 28, 28]"),
    ],
    "video": [
        ((2, 1, 4, 16, 16), "video model expects input [B, 3, 4, 16, 16], got [2, 1, 4, 16, 16]"),
        ((2, 3, 6, 16, 16), "video model expects input [B, 3, 4, 16, 16], got [2, 3, 6, 16, 16]"),
        ((2, 3, 16, 16), "video model expects input [B, 3, 4, 16, 16], got [2, 3, 16, 16]"),
    ],
    "point": [
        ((2, 128, 6), "point model expects input [B, 128, 3], got [2, 128, 6]"),
        ((2, 3, 128), "point model expects input [B, 128, 3], got [2, 3, 128]"),
        ((128, 3), "point model expects input [B, 128, 3], got [128, 3]"),
        ((2, 200, 3), "point model expects input [B, 128, 3], got [2, 200, 3]"),
    ],
    "audio": [
        ((2, 1, 32, 64), "audio model expects input [B, 1, 64, 32], got [2, 1, 32, 64]"),
        ((2, 2, 64, 32), "audio model expects input [B, 1, 64, 32], got [2, 2, 64, 32]"),
        ((2, 64, 32), "audio model expects input [B, 1, 64, 32], got [2, 64, 32]"),
    ],
}


@pytest.mark.parametrize("modality, shape, message",
                         [(m, s, msg) for m, cases in CASES.items() for s, msg in cases])
def test_wrong_shape(modality, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_model(modality)(torch.randn(*shape))


@pytest.mark.parametrize("modality", list(CASES))
def test_nan_and_empty(modality):
    model = tiny_model(modality)
    shape = model.pretrained_cfg["input_size"]
    bad = torch.randn(2, *shape)
    bad.view(-1)[5] = float("nan")
    # The value check reads every element (a device sync per forward on GPUs): off unless asked for.
    assert not torch.isfinite(model.eval()(bad)).all()
    with pytest.raises(ValueError, match="non-finite"):
        check_finite_inputs(model)(bad)
    with pytest.raises(ValueError, match="empty input"):
        model(torch.randn(0, *shape))


def test_too_few_points():
    model = tiny_model("point")  # 16 groups of 8 points
    with pytest.raises(ValueError, match=r"at least max\(group_size=8, num_groups=16\) points per cloud, got 10"):
        model(torch.randn(2, 10, 3))
    with pytest.raises(ValueError, match="must not exceed num_points"):
        tiny_model("point", num_points=12)


def test_partseg_object_label_errors():
    model = tiny_model("point", num_classes=4, task="partseg", num_object_classes=3)
    points = torch.randn(2, 128, 3)
    with pytest.raises(ValueError, match="needs object_label"):
        model(points)
    with pytest.raises(ValueError, match=r"values must lie in \[0, 3\)"):
        model(points, torch.tensor([0, 3]))
