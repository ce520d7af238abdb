"""load_target_weights into timm ViTs and into stand-ins with the video/point/audio names."""

from __future__ import annotations

import pytest
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import nn
from torch.nn.utils import parametrize

from .checkpoint_layouts import (
    DEPTH, HEADS, WIDTH, PointStandIn, bert_state_dict, mae_checkpoint, pointmae_checkpoint, save, small_vit,
    videomae_state_dict,
)
from m2pt.checkpoints import LoadReport, load_target_weights


class PatchEmbed(nn.Module):
    def __init__(self, proj: nn.Module) -> None:
        super().__init__()
        self.proj = proj


class VideoStandIn(nn.Module):
    """The video model's names: Conv3d tubelets, non-persistent sin-cos pos_embed, fused qkv bias."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(nn.Conv3d(3, WIDTH, (2, 8, 8), (2, 8, 8)))
        self.register_buffer("pos_embed", torch.randn(1, 32, WIDTH), persistent=False)
        self.blocks = nn.ModuleList(Block(WIDTH, HEADS, qkv_bias=True) for _ in range(DEPTH))
        self.fc_norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, num_classes)


class AudioStandIn(nn.Module):
    """The audio model's names: one-channel Conv2d patches, cls_token, non-persistent pos_embed."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(nn.Conv2d(1, WIDTH, 8, 8))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.register_buffer("pos_embed", torch.randn(1, 9, WIDTH), persistent=False)
        self.blocks = nn.ModuleList(Block(WIDTH, HEADS, qkv_bias=True) for _ in range(DEPTH))
        self.fc_norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, num_classes)


def assert_loaded(model: nn.Module, expected: dict[str, torch.Tensor], keys) -> None:
    state = model.state_dict()
    for key in keys:
        assert torch.equal(state[key], expected[key]), key


def test_timm_to_timm_loads_everything(tmp_path):
    source = small_vit(seed=1)
    save(dict(source.state_dict()), tmp_path / "vit.safetensors")
    target = small_vit(seed=2)
    report = load_target_weights(target, tmp_path / "vit.safetensors", strict=True)
    assert report.source_format == "timm"
    assert not (report.missing or report.unexpected or report.mismatched or report.resized)
    assert report.loaded == list(target.state_dict())
    assert_loaded(target, source.state_dict(), target.state_dict())


def test_mae_pretrain_into_fine_tuning_vit():
    checkpoint = mae_checkpoint()
    target = small_vit(seed=3, global_pool="avg", fc_norm=True)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_target_weights(target, checkpoint)
    assert report.source_format == "mae"
    assert set(report.missing) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert set(report.unexpected) == {"norm.weight", "norm.bias"}  # pretraining norm, not fc_norm
    assert "decoder_pred.weight" in report.dropped and "mask_token" in report.dropped
    assert_loaded(target, checkpoint["model"], ["patch_embed.proj.weight", "cls_token", "pos_embed",
                                                "blocks.1.attn.qkv.bias", "blocks.0.mlp.fc2.weight"])
    assert torch.equal(target.state_dict()["head.weight"], before["head.weight"])
    with pytest.raises(ValueError, match="missing from the checkpoint: fc_norm.weight"):
        load_target_weights(small_vit(global_pool="avg", fc_norm=True), checkpoint, strict=True)


def test_pos_embed_resampled_to_a_larger_grid():
    source = small_vit(seed=4)  # 32px / patch 8: 4x4 grid
    target = small_vit(seed=5, img_size=48)  # 6x6 grid
    report = load_target_weights(target, source.state_dict())
    assert [c.key for c in report.resized] == ["pos_embed"]
    assert report.resized[0].checkpoint_shape == (1, 17, WIDTH)
    assert report.resized[0].model_shape == (1, 37, WIDTH)
    expected = resample_abs_pos_embed(source.pos_embed.detach(), new_size=[6, 6], old_size=[4, 4], num_prefix_tokens=1)
    assert torch.equal(target.pos_embed.detach(), expected)
    assert torch.equal(target.pos_embed[:, 0], source.pos_embed[:, 0])  # cls slot kept as is
    assert "pos_embed" in report.loaded and "4x4 grid to 6x6" in str(report)


def test_rgb_patch_embed_summed_into_one_channel():
    source = small_vit(seed=6)
    target = small_vit(seed=7, in_chans=1)
    report = load_target_weights(target, source.state_dict())
    assert [c.key for c in report.resized] == ["patch_embed.proj.weight"]
    expected = source.patch_embed.proj.weight.sum(dim=1, keepdim=True)
    assert torch.allclose(target.patch_embed.proj.weight, expected)
    grey = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(
        target.patch_embed(grey), source.patch_embed(grey.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_different_patch_size_is_reported_and_strict_names_both_shapes():
    source = small_vit(seed=8)  # patch 8
    target = small_vit(seed=9, patch_size=4)
    before = target.patch_embed.proj.weight.detach().clone()
    report = load_target_weights(target, source.state_dict())
    assert [c.key for c in report.mismatched] == ["patch_embed.proj.weight"]
    assert [c.key for c in report.resized] == ["pos_embed"]  # 4x4 grid -> 8x8 grid
    assert "patch_embed.proj.weight" not in report.loaded
    assert torch.equal(target.patch_embed.proj.weight, before)
    with pytest.raises(ValueError, match=r"patch_embed.proj.weight: checkpoint \[32, 3, 8, 8\] -> model \[32, 3, 4, 4\]"):
        load_target_weights(target, source.state_dict(), strict=True)


def test_head_of_another_task_not_loaded():
    source = small_vit(seed=10, num_classes=1000 // 100)
    target = small_vit(seed=11, num_classes=5)
    report = load_target_weights(target, source.state_dict())
    assert {c.key for c in report.mismatched} == {"head.weight", "head.bias"}
    assert set(report.missing) == {"head.weight", "head.bias"}
    text = str(report)
    assert "2 shape mismatches (not loaded)" in text and "head.weight: checkpoint [10, 32] -> model [5, 32]" in text


def test_videomae_into_video_model(tmp_path):
    source = videomae_state_dict(prefix="backbone.")
    save({"module": source}, tmp_path / "videomae.pth")
    target = VideoStandIn()
    report = load_target_weights(target, tmp_path / "videomae.pth", strict=True)
    assert report.source_format == "videomae"
    assert report.loaded == list(target.state_dict())
    assert "pos_embed" not in target.state_dict()  # non-persistent: never loaded
    qkv_bias = target.blocks[0].attn.qkv.bias
    assert torch.equal(qkv_bias, torch.cat([source["backbone.blocks.0.attn.q_bias"], torch.zeros(WIDTH),
                                            source["backbone.blocks.0.attn.v_bias"]]))
    assert torch.equal(target.patch_embed.proj.weight, source["backbone.patch_embed.proj.weight"])


def test_videomae_pretrain_into_video_model():
    source = videomae_state_dict(prefix="encoder.", pretrain=True)
    report = load_target_weights(VideoStandIn(), {"model": source})
    assert set(report.missing) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert set(report.unexpected) == {"norm.weight", "norm.bias"}
    assert "decoder.blocks.0.attn.qkv.weight" in report.dropped and "encoder_to_decoder.weight" in report.dropped


@pytest.mark.parametrize("pretrain", [True, False], ids=["pretrain", "finetune"])
def test_pointmae_into_point_model(pretrain):
    checkpoint = pointmae_checkpoint(pretrain=pretrain)
    target = PointStandIn()
    report = load_target_weights(target, checkpoint)
    assert report.source_format == "pointmae"
    prefix = "module.MAE_encoder." if pretrain else "module."
    source = checkpoint["base_model"]
    for key in ("encoder.first_conv.0.weight", "encoder.first_conv.1.running_var", "encoder.second_conv.3.weight",
                "pos_embed.2.weight", "norm.weight"):
        assert torch.equal(target.state_dict()[key], source[prefix + key]), key
    assert torch.equal(target.blocks[1].attn.qkv.weight, source[prefix + "blocks.blocks.1.attn.qkv.weight"])
    expected_missing = {"head.weight", "head.bias"} | ({"cls_token", "cls_pos"} if pretrain else set())
    assert set(report.missing) == expected_missing
    assert report.unexpected == ([] if pretrain else ["cls_head_finetune.0.weight"])


def test_audiomae_into_audio_model():
    checkpoint = mae_checkpoint(in_chans=1, img_size=(32, 16))
    target = AudioStandIn()
    report = load_target_weights(target, checkpoint)
    assert report.source_format == "audiomae"
    # pos_embed: fixed sin-cos in the model, not a loadable key; norm: the pretraining norm.
    assert set(report.unexpected) == {"pos_embed", "norm.weight", "norm.bias"}
    assert set(report.missing) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert torch.equal(target.cls_token, checkpoint["model"]["cls_token"])
    assert torch.equal(target.patch_embed.proj.weight, checkpoint["model"]["patch_embed.proj.weight"])


def test_bert_linears_into_a_vit():
    target = small_vit(seed=12)
    report = load_target_weights(target, bert_state_dict())
    assert report.source_format == "bert"
    assert sum(k.startswith("blocks.") for k in report.loaded) == DEPTH * 8  # four linears x weight, bias
    assert "embeddings.word_embeddings.weight" in report.unexpected


def test_model_with_pathways_refused():
    target = small_vit()

    class AddDelta(nn.Module):
        def forward(self, weight):
            return weight + 1

    parametrize.register_parametrization(target.blocks[0].attn.qkv, "weight", AddDelta())
    with pytest.raises(ValueError, match="Load the target weights first"):
        load_target_weights(target, small_vit().state_dict())


def test_report_str_lists_everything():
    report = LoadReport("mae", loaded=["a"], missing=["head.weight"], unexpected=["norm.bias"], dropped=["mask_token"])
    text = str(report)
    assert text.startswith("LoadReport (mae checkpoint): 1 loaded, 1 missing, 1 unexpected (ignored)")
    assert "missing: head.weight" in text and "unexpected: norm.bias" in text
