"""MAE pretraining output is an auxiliary checkpoint that pairs with a target."""

from __future__ import annotations

import pytest
import torch

import m2pt
from m2pt.checkpoints import load_auxiliary
from m2pt.models import create_model
from m2pt.train.mae import pretrain
from m2pt.train.mae_model import MaskedAutoencoder, chamfer_l2, patchify_2d, patchify_3d

from .conftest import TINY_MODEL, tiny_config


def test_patchify_matches_the_tokenizer_order():
    image = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).reshape(2, 1, 4, 4)
    patches = patchify_2d(image, 2)
    assert patches.shape == (2, 4, 4)
    assert patches[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]  # top-right patch
    video = torch.randn(1, 3, 4, 4, 4)
    tubes = patchify_3d(video, 2, 2)
    assert tubes.shape == (1, 8, 24)
    torch.testing.assert_close(tubes[0, 0], video[0, :, :2, :2, :2].permute(1, 2, 3, 0).reshape(-1))


def test_chamfer_is_zero_for_a_permuted_copy_and_positive_otherwise():
    points = torch.randn(3, 16, 3)
    assert chamfer_l2(points[:, torch.randperm(16)], points).item() < 1e-10
    assert chamfer_l2(points + 0.1, points).item() > 0


@pytest.mark.parametrize("modality", ["point", "video"])
def test_masked_autoencoder_loss_decreases_for_other_modalities(modality):
    overrides = dict(TINY_MODEL)
    if modality == "point":
        overrides.update(num_points=128, num_groups=8, group_size=16)
    torch.manual_seed(0)
    encoder = create_model(modality, "tiny", num_classes=0, **overrides)
    mae = MaskedAutoencoder(encoder, modality, mask_ratio=0.6, decoder_dim=16, decoder_depth=1)
    x = torch.randn(4, *encoder.pretrained_cfg["input_size"])
    optimizer = torch.optim.AdamW(mae.parameters(), lr=3e-3)
    generator_seed = 0
    losses = []
    for _ in range(8):
        loss = mae(x, generator=torch.Generator().manual_seed(generator_seed))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_pretrained_encoder_loads_with_load_auxiliary_and_pairs_with_a_target(tmp_path):
    config = tiny_config(tmp_path / "mae", task="pretrain", epochs=1, mask_ratio=0.75, decoder_dim=16,
                         decoder_depth=1)
    result = pretrain(config, quiet=True)
    assert result["finished"] and (tmp_path / "mae" / "plots" / "loss.png").is_file()
    aux = load_auxiliary(result["encoder"])
    assert aux.source_format == "m2pt" and aux.depth == 2 and aux.num_heads == 2
    target = create_model("point", "tiny", num_classes=5, num_points=128, num_groups=8, group_size=16, **TINY_MODEL)
    m2pt.add_pathways(target, aux)
    assert len(m2pt.pathway_summary(target).layers) == 8
    deeper = create_model("image", "tiny", num_classes=5, embed_dim=32, depth=3, num_heads=2)
    with pytest.raises(m2pt.PathwayError, match="depth mismatch"):
        m2pt.add_pathways(deeper, aux)


@pytest.mark.parametrize("modality", ["image", "video", "audio", "point"])
def test_masked_autoencoder_runs_under_bf16_autocast(modality):
    """CPU autocast gives the decoder bf16 activations, as CUDA autocast does in real runs."""
    from ..models.helpers import random_input, tiny_model

    torch.manual_seed(0)
    mae = MaskedAutoencoder(tiny_model(modality), modality, mask_ratio=0.5, decoder_dim=16, decoder_depth=1)
    x = random_input(mae.encoder, batch=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = mae(x)
    loss.backward()
    assert torch.isfinite(loss) and mae.mask_token.grad is not None


def test_image_encoder_keeps_its_trained_norm_for_a_class_token_linear_probe(tmp_path):
    """MAE's layout: the saved encoder's final ``norm`` is the norm trained in pretraining, so the paper's
    linear probe (class-token pooling) starts from it, and average-pooling fine-tuning still loads."""
    from m2pt.checkpoints import load_target_weights, save_model
    from m2pt.io import load_tensor_file
    from m2pt.train.finetuning import finetune, load_initial_weights

    result = pretrain(tiny_config(tmp_path / "mae", task="pretrain", epochs=1, mask_ratio=0.75, decoder_dim=16,
                                  decoder_depth=1), quiet=True)
    saved = load_tensor_file(result["encoder"])
    assert "fc_norm.weight" not in saved and not torch.equal(saved["norm.weight"], torch.ones_like(saved["norm.weight"]))
    last = torch.load(tmp_path / "mae" / "checkpoint.pt", weights_only=True)["model"]
    torch.testing.assert_close(saved["norm.weight"], last["encoder_norm.weight"], rtol=0, atol=0)

    probe = finetune(tiny_config(tmp_path / "probe", init=result["encoder"], linear_probe=True, optimizer="lars",
                                 lr=0.5, weight_decay=0.0, epochs=1,
                                 model_overrides={**TINY_MODEL, "global_pool": "token"}), quiet=True)
    assert probe["finished"]
    averaging = create_model("image", "tiny", num_classes=10, **TINY_MODEL)
    report = load_initial_weights(averaging, result["encoder"])
    assert sorted(report.unexpected) == ["norm.bias", "norm.weight"]
    assert sorted(report.missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]

    old_style = create_model("image", "tiny", num_classes=0, **TINY_MODEL)  # average pooling: fc_norm, no norm
    load_target_weights(old_style, result["encoder"])
    old_file = save_model(old_style, tmp_path / "old_encoder.safetensors")
    token_target = create_model("image", "tiny", num_classes=10, global_pool="token", **TINY_MODEL)
    with pytest.raises(ValueError, match="no final norm .*global_pool=avg"):
        load_initial_weights(token_target, str(old_file))
