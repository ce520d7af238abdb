import pytest
import torch
from timm.optim import create_optimizer_v2

from m2pt.models import MODALITIES, default_fetch_indices

from .helpers import random_input, tiny_model

STEM_PARAMS = {
    "image": {"cls_token", "pos_embed", "patch_embed.proj.weight"},
    "video": {"patch_embed.proj.weight"},
    "point": {"cls_token", "cls_pos", "encoder.first_conv.0.weight", "pos_embed.0.weight"},
    "audio": {"cls_token", "patch_embed.proj.weight"},
}
NO_WEIGHT_DECAY = {
    "image": {"cls_token", "pos_embed"},
    "video": set(),
    "point": {"cls_token", "cls_pos"},
    "audio": {"cls_token"},
}


@pytest.mark.parametrize("modality", MODALITIES)
def test_reset_classifier(modality):
    model = tiny_model(modality, num_classes=5)
    model.reset_classifier(7)
    x = random_input(model)
    assert model.eval()(x).shape == (2, 7)
    model.reset_classifier(0)
    assert model(x).shape == (2, model.head_hidden_size)


@pytest.mark.parametrize("modality", MODALITIES)
def test_no_weight_decay_names_exist(modality):
    model = tiny_model(modality)
    params = dict(model.named_parameters())
    assert {n for n in model.no_weight_decay() if n in params} == NO_WEIGHT_DECAY[modality]


@pytest.mark.parametrize("modality", MODALITIES)
def test_layer_decay_optimizer(modality):
    model = tiny_model(modality)
    matcher = model.group_matcher()
    assert matcher["blocks"][0][0] == r"^blocks\.(\d+)"
    assert model.group_matcher(coarse=True) == matcher
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    scale_of = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            scale_of[id(p)] = (group["lr_scale"], group["weight_decay"])
    named = dict(model.named_parameters())
    assert len(scale_of) == len(named)
    stem = scale_of[id(named[sorted(STEM_PARAMS[modality])[0]])][0]
    block0 = scale_of[id(named["blocks.0.mlp.fc1.weight"])][0]
    block1 = scale_of[id(named["blocks.1.mlp.fc1.weight"])][0]
    head = max(s for s, _ in scale_of.values())
    assert stem == pytest.approx(0.75 ** 3) and block0 == pytest.approx(0.75 ** 2) and block1 == pytest.approx(0.75)
    assert head == pytest.approx(1.0)
    for name in STEM_PARAMS[modality]:
        assert scale_of[id(named[name])][0] == pytest.approx(stem), name
    for name in NO_WEIGHT_DECAY[modality]:
        assert scale_of[id(named[name])][1] == 0.0, name
    assert scale_of[id(named["blocks.0.mlp.fc1.weight"])][1] == 0.05


@pytest.mark.parametrize("modality, tokens", [("video", 8), ("audio", 8), ("point", 16)])
def test_embed_tokens(modality, tokens):
    model = tiny_model(modality)
    x = random_input(model, batch=3)
    assert model.embed_tokens(x).shape == (3, tokens, 32)


def test_point_group_and_embed_tokens_add_position():
    model = tiny_model("point").eval()
    points = torch.randn(2, 128, 3)
    neighborhood, center = model.group(points)
    assert neighborhood.shape == (2, 16, 8, 3) and center.shape == (2, 16, 3)
    tokens, pos = model.embed_groups(neighborhood, center)
    torch.testing.assert_close(model.embed_tokens(points), tokens + pos)


def test_point_pos_added_before_every_block():
    model = tiny_model("point").eval()
    points = torch.randn(2, 128, 3)
    tokens, pos, _ = model.forward_tokens(points)
    expected = model.blocks[1](model.blocks[0](tokens + pos) + pos)
    torch.testing.assert_close(model.forward_features(points), model.norm(expected))


def test_partseg_output_shape_and_fetch_rule():
    assert default_fetch_indices(12) == (3, 7, 11)
    assert default_fetch_indices(6) == (1, 3, 5)
    assert default_fetch_indices(2) == (0, 1, 1)
    model = tiny_model("point", num_classes=6, task="partseg", num_object_classes=4, propagation_dims=[32, 32])
    assert model.fetch_indices == (0, 1, 1)
    logits = model.eval()(torch.randn(3, 128, 3), torch.tensor([0, 2, 3]))
    assert logits.shape == (3, 6, 128)
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 2, 3]), 4)
    assert model.pretrained_cfg["task"] == "partseg"
    model.reset_classifier(9)
    assert model.eval()(torch.randn(2, 128, 3), one_hot[:2]).shape == (2, 9, 128)


def test_audio_multi_label_recorded():
    model = tiny_model("audio", multi_label=True)
    assert model.multi_label and model.pretrained_cfg["multi_label"] is True
    assert tiny_model("audio").multi_label is False
