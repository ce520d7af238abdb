"""ONNX export of merged models, run through onnxruntime, and ``m2pt export --onnx``."""

from __future__ import annotations

import json

import pytest
import torch

import m2pt
from m2pt.checkpoints import CheckpointError, save_model
from m2pt.models import create_model

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from m2pt.checkpoints.onnx import export_onnx, run_onnxruntime  # noqa: E402

TINY = dict(embed_dim=32, depth=2, num_heads=2)
TOL = 1e-4


def merged(modality: str = "image") -> torch.nn.Module:
    torch.manual_seed(0)
    target = create_model(modality, "tiny", num_classes=5, **TINY)
    aux = create_model(modality, "tiny", num_classes=5, **TINY)
    return m2pt.merge_pathways(m2pt.add_pathways(target, aux, scale_init=0.3)).eval()


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_onnxruntime_matches_torch_with_a_dynamic_batch(tmp_path, exporter):
    model = merged("image")
    result = export_onnx(model, tmp_path / "vit.onnx", exporter=exporter)
    assert result.path.is_file() and result.input_shape == (2, 1, 28, 28)
    assert result.max_abs_diff is not None and result.max_abs_diff < TOL
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(run_onnxruntime(result.path, x), model(x), atol=TOL, rtol=0)


def test_pathway_model_is_refused_without_writing(tmp_path):
    model = m2pt.add_pathways(create_model("image", "tiny", num_classes=5, **TINY),
                              create_model("image", "tiny", num_classes=5, **TINY))
    with pytest.raises(CheckpointError, match=r"m2pt.merge_pathways\(model\)"):
        export_onnx(model, tmp_path / "vit.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_point_model_exports_with_its_neighbour_search(tmp_path, exporter):
    """FPS and kNN grouping run inside the ONNX graph; clouds of a new batch size group as in PyTorch."""
    model = merged("point")
    result = export_onnx(model, tmp_path / "point.onnx", exporter=exporter)
    assert result.max_abs_diff is not None and result.max_abs_diff < TOL
    x = torch.randn(4, *model.pretrained_cfg["input_size"], generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(run_onnxruntime(result.path, x), model(x), atol=TOL, rtol=0)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_part_segmentation_exports_with_its_object_label_input(tmp_path, exporter):
    """Every group centre is one of the input points: its interpolation weight must stay finite in ONNX."""
    torch.manual_seed(0)
    model = create_model("point", "tiny", num_classes=6, task="partseg", num_points=256, **TINY).eval()
    result = export_onnx(model, tmp_path / "partseg.onnx", exporter=exporter)
    assert result.input_shape == (2, 256, 3) and result.max_abs_diff < TOL
    points, labels = torch.randn(3, 256, 3), torch.tensor([0, 7, 15])
    with torch.no_grad():
        expected = model(points, labels)
    torch.testing.assert_close(run_onnxruntime(result.path, (points, labels)), expected, atol=TOL, rtol=0)


def test_a_nan_where_torch_has_a_number_is_an_infinite_difference():
    from m2pt.checkpoints.onnx import largest_difference

    expected = torch.tensor([1.0, float("nan"), 3.0])
    assert largest_difference(torch.tensor([1.0, float("nan"), 3.5]), expected) == 0.5
    assert largest_difference(torch.tensor([1.0, float("nan"), float("nan")]), expected) == float("inf")


class _PairwiseDistances(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, x).sum(-1)


def test_untranslatable_model_names_the_operation_and_leaves_no_file(tmp_path):
    with pytest.raises(CheckpointError, match="dynamo exporter failed: .*cdist"):
        export_onnx(_PairwiseDistances(), tmp_path / "cdist.onnx", example=torch.randn(2, 8, 3), check=False)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_onnx(tmp_path, capsys):
    from m2pt.cli import main

    model = merged("audio")
    weights = save_model(model, tmp_path / "audio.safetensors")
    out = tmp_path / "audio.onnx"
    assert main(["export", str(weights), "--onnx", str(out), "--batch-size", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["onnx"] == str(out) and report["exporter"] == "dynamo" and report["input_shape"][0] == 3
    assert report["max_abs_diff_vs_torch"] < TOL
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    with torch.no_grad():
        torch.testing.assert_close(run_onnxruntime(out, x), model(x), atol=TOL, rtol=0)
    assert main(["export", str(tmp_path / "missing.safetensors"), "--onnx", str(out)]) == 2
    assert "error" in capsys.readouterr().err


def test_hf_model_points_to_optimum(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                    image_size=16, patch_size=4)
    with pytest.raises(CheckpointError, match="optimum-cli export onnx"):
        export_onnx(transformers.ViTModel(config), tmp_path / "vit.onnx")
    assert list(tmp_path.iterdir()) == []
