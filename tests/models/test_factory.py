import json

import pytest
import torch
from timm.models.vision_transformer import Block, VisionTransformer

from m2pt.models import MODALITIES, PRESETS, create_model, create_model_from_args
from m2pt.models.presets import preset_kwargs

from .helpers import TINY_INPUTS, random_input, tiny_model

EXPECTED_INPUT = {
    "image": (1, 28, 28),
    "video": (3, 4, 16, 16),
    "point": (128, 3),
    "audio": (1, 64, 32),
}


@pytest.mark.parametrize("modality", MODALITIES)
def test_forward_shapes_and_input_size(modality):
    model = tiny_model(modality, num_classes=5).eval()
    assert tuple(model.pretrained_cfg["input_size"]) == EXPECTED_INPUT[modality]
    x = random_input(model, batch=3)
    assert model(x).shape == (3, 5)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (3, model.head_hidden_size)


@pytest.mark.parametrize("modality", MODALITIES)
def test_block_naming_contract(modality):
    model = tiny_model(modality)
    assert len(model.blocks) == 2 and all(type(b) is Block for b in model.blocks)
    keys = set(model.state_dict())
    for name in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
        assert f"blocks.1.{name}.weight" in keys
    assert ("blocks.0.attn.qkv.bias" in keys) == (modality != "point")  # Point-MAE has no qkv bias


@pytest.mark.parametrize("modality", MODALITIES)
def test_model_args_rebuild_identical_model(modality):
    model = tiny_model(modality, drop_path_rate=0.1)
    args = json.loads(json.dumps(model.m2pt_model_args))
    assert args["modality"] == modality and args["preset"] == "tiny" and args["num_classes"] == 5
    rebuilt = create_model_from_args(args)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = random_input(model)
    torch.testing.assert_close(model.eval()(x), rebuilt.eval()(x))


def test_drop_path_increases_linearly():
    model = tiny_model("audio", depth=2, drop_path_rate=0.2)
    assert isinstance(model.blocks[0].drop_path1, torch.nn.Identity)
    assert model.blocks[1].drop_path1.drop_prob == pytest.approx(0.2)


def test_presets():
    assert preset_kwargs("image", "base") == dict(
        embed_dim=768, depth=12, num_heads=12, img_size=224, patch_size=16, in_chans=3)
    small = create_model("video", "small", num_classes=3, depth=1)
    assert small.embed_dim == 384 and small.pretrained_cfg["input_size"] == (3, 8, 32, 32)
    assert create_model("audio", "tiny", num_classes=2, depth=1).pretrained_cfg["input_size"] == (1, 96, 128)
    assert set(PRESETS) == {"base", "small", "tiny"}


def test_image_is_a_plain_timm_vit():
    model = tiny_model("image")
    assert type(model) is VisionTransformer
    assert model.global_pool == "avg" and not isinstance(model.fc_norm, torch.nn.Identity)


@pytest.mark.parametrize("call, message", [
    (lambda: create_model("text"), "valid modalities: image, video, point, audio"),
    (lambda: create_model("image", "huge"), "valid presets: base, small, tiny"),
    (lambda: create_model("image", "tiny", num_grups=3), "valid overrides:"),
    (lambda: create_model("video", "tiny", num_points=3), "num_points"),
    (lambda: create_model("point", "tiny", task="detection"), "valid tasks: classification, partseg"),
    (lambda: create_model("image", "tiny", task="partseg"), "only available for point"),
    (lambda: create_model("image", "tiny", embed_dim=30, num_heads=4), "divisible"),
])
def test_bad_factory_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
