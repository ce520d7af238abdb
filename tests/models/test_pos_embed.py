import numpy as np
import pytest
import torch

from m2pt.models import sincos_2d_pos_embed, sincos_3d_pos_embed, sinusoid_1d_table

from .helpers import random_input, tiny_model


def mae_2d_sincos_reference(embed_dim, grid_h, grid_w, cls_token):
    """MAE's util/pos_embed.py (numpy), for a rectangular grid as AudioMAE's `_flexible` variant."""
    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    grid = np.meshgrid(np.arange(grid_w, dtype=np.float32), np.arange(grid_h, dtype=np.float32))
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_h, grid_w])
    emb = np.concatenate([one_d(embed_dim // 2, grid[0]), one_d(embed_dim // 2, grid[1])], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


def videomae_table_reference(n_position, d_hid):
    table = np.array([[pos / np.power(10000, 2 * (j // 2) / d_hid) for j in range(d_hid)] for pos in range(n_position)])
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return table


def test_sincos_2d_matches_mae():
    ours = sincos_2d_pos_embed(32, (4, 3), cls_token=True)[0].numpy()
    np.testing.assert_allclose(ours, mae_2d_sincos_reference(32, 4, 3, True), atol=1e-6)


def test_videomae_table_matches_reference():
    np.testing.assert_allclose(sinusoid_1d_table(10, 24)[0].numpy(), videomae_table_reference(10, 24), atol=1e-6)


def test_sincos_3d_distinct_positions():
    emb = sincos_3d_pos_embed(36, (2, 3, 4))[0]
    assert emb.shape == (24, 36)
    assert torch.cdist(emb, emb).add(torch.eye(24) * 1e3).min() > 0.1


@pytest.mark.parametrize("modality", ["video", "audio"])
def test_fixed_pos_embed_is_buffer_outside_state_dict(modality):
    model = tiny_model(modality)
    assert "pos_embed" not in model.state_dict()
    assert "pos_embed" in dict(model.named_buffers())
    assert "pos_embed" not in dict(model.named_parameters())
    before = model.pos_embed.clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(random_input(model)).sum().backward()
    optimizer.step()
    torch.testing.assert_close(model.pos_embed, before, rtol=0, atol=0)


def test_video_pos_embed_types():
    videomae = tiny_model("video")
    torch.testing.assert_close(videomae.pos_embed, sinusoid_1d_table(videomae.num_patches, 32))
    three_d = tiny_model("video", pos_embed_type="sincos_3d")
    torch.testing.assert_close(three_d.pos_embed, sincos_3d_pos_embed(32, three_d.grid_size))
    with pytest.raises(ValueError, match="valid: videomae, sincos_3d"):
        tiny_model("video", pos_embed_type="learned")
