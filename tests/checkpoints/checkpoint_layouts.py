"""Small synthetic checkpoints with the real key names, wrappers and prefixes of each layout.

Width 32, depth 2; every tensor is random so that a wrong mapping cannot pass by accident.
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

WIDTH, DEPTH, HEADS, HIDDEN = 32, 2, 2, 128


def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Fill every parameter and buffer with random values (in place)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return module


def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=generator) for k, shape in shapes.items()}


def small_vit(seed: int = 0, **kwargs) -> VisionTransformer:
    args = dict(img_size=32, patch_size=8, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, num_classes=10)
    args.update(kwargs)
    return randomize_(VisionTransformer(**args), seed).eval()


def block_shapes(prefix: str, qkv_bias: bool = True, depth: int = DEPTH) -> dict[str, tuple[int, ...]]:
    """timm block keys under ``prefix`` (e.g. ``"blocks."``)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(depth):
        p = f"{prefix}{i}."
        shapes.update({
            p + "norm1.weight": (WIDTH,), p + "norm1.bias": (WIDTH,),
            p + "attn.qkv.weight": (3 * WIDTH, WIDTH),
            p + "attn.proj.weight": (WIDTH, WIDTH), p + "attn.proj.bias": (WIDTH,),
            p + "norm2.weight": (WIDTH,), p + "norm2.bias": (WIDTH,),
            p + "mlp.fc1.weight": (HIDDEN, WIDTH), p + "mlp.fc1.bias": (HIDDEN,),
            p + "mlp.fc2.weight": (WIDTH, HIDDEN), p + "mlp.fc2.bias": (WIDTH,),
        })
        if qkv_bias:
            shapes[p + "attn.qkv.bias"] = (3 * WIDTH,)
    return shapes


def mae_decoder_shapes(prefix: str = "") -> dict[str, tuple[int, ...]]:
    dec = 16
    shapes = {prefix + "mask_token": (1, 1, dec), prefix + "decoder_embed.weight": (dec, WIDTH),
              prefix + "decoder_embed.bias": (dec,), prefix + "decoder_pos_embed": (1, 17, dec),
              prefix + "decoder_norm.weight": (dec,), prefix + "decoder_pred.weight": (3 * 64, dec)}
    shapes.update({prefix + "decoder_" + k: v for k, v in block_shapes("blocks.", depth=1).items()})
    return shapes


def mae_checkpoint(in_chans: int = 3, img_size=32, seed: int = 1) -> dict:
    """MAE (image) or AudioMAE (``in_chans=1``) pretraining checkpoint ``{'model': ...}``."""
    vit = small_vit(seed, in_chans=in_chans, img_size=img_size, num_classes=0)
    state_dict = dict(vit.state_dict())
    state_dict.update(random_tensors(mae_decoder_shapes(), seed + 1))
    return {"model": state_dict}


def videomae_state_dict(prefix: str = "", pretrain: bool = False, seed: int = 2) -> dict[str, Tensor]:
    """VideoMAE / VideoMAEv2 encoder keys: split q/v biases, Conv3d tubelets, no cls token."""
    shapes = {"patch_embed.proj.weight": (WIDTH, 3, 2, 8, 8), "patch_embed.proj.bias": (WIDTH,)}
    shapes.update(block_shapes("blocks.", qkv_bias=False))
    for i in range(DEPTH):
        shapes[f"blocks.{i}.attn.q_bias"] = (WIDTH,)
        shapes[f"blocks.{i}.attn.v_bias"] = (WIDTH,)
    if pretrain:
        shapes.update({"norm.weight": (WIDTH,), "norm.bias": (WIDTH,)})
    else:
        shapes.update({"fc_norm.weight": (WIDTH,), "fc_norm.bias": (WIDTH,),
                       "head.weight": (10, WIDTH), "head.bias": (10,)})
    state_dict = {prefix + k: v for k, v in random_tensors(shapes, seed).items()}
    if pretrain:
        decoder = {"decoder." + k: v for k, v in random_tensors(block_shapes("blocks.", depth=1), seed + 1).items()}
        decoder.update(random_tensors({"encoder_to_decoder.weight": (16, WIDTH), "mask_token": (1, 1, 16)}, seed + 2))
        state_dict.update(decoder)
    return state_dict


class PointTokenizer(nn.Module):
    """Point-MAE's mini-PointNet (``encoder.first_conv`` / ``encoder.second_conv``), small."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        self.first_conv = nn.Sequential(nn.Conv1d(3, 16, 1), nn.BatchNorm1d(16), nn.ReLU(), nn.Conv1d(16, 32, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(64, 64, 1), nn.BatchNorm1d(64), nn.ReLU(), nn.Conv1d(64, width, 1))


class PointStandIn(nn.Module):
    """The point model's names: Point-MAE tokenizer, cls_token/cls_pos, bias-less qkv."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.encoder = PointTokenizer()
        self.pos_embed = nn.Sequential(nn.Linear(3, 16), nn.GELU(), nn.Linear(16, WIDTH))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.blocks = nn.ModuleList(Block(WIDTH, HEADS, qkv_bias=False) for _ in range(DEPTH))
        self.norm = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, num_classes)


def pointmae_checkpoint(pretrain: bool = True, seed: int = 3) -> dict:
    """Point-MAE ``{'base_model': ..., 'optimizer': ..., 'epoch': ...}`` with ``module.`` keys."""
    source = randomize_(PointStandIn(), seed)
    encoder = {k.replace("blocks.", "blocks.blocks.", 1) if k.startswith("blocks.") else k: v
               for k, v in source.state_dict().items() if not k.startswith("head.")}
    if pretrain:
        encoder = {k: v for k, v in encoder.items() if k not in ("cls_token", "cls_pos")}
        state_dict = {"module.MAE_encoder." + k: v for k, v in encoder.items()}
        decoder = {"mask_token": (1, 1, WIDTH), "decoder_pos_embed.0.weight": (16, 3),
                   "increase_dim.0.weight": (96, WIDTH, 1)}
        decoder.update({"MAE_decoder." + k.replace("blocks.", "blocks.blocks.", 1): v
                        for k, v in block_shapes("blocks.", qkv_bias=False, depth=1).items()})
        state_dict.update({"module." + k: v for k, v in random_tensors(decoder, seed + 1).items()})
    else:
        encoder.update(random_tensors({"cls_head_finetune.0.weight": (16, 2 * WIDTH)}, seed + 1))
        state_dict = {"module." + k: v for k, v in encoder.items()}
    return {"base_model": state_dict, "optimizer": {"state": {}, "param_groups": []}, "epoch": 300}


def bert_state_dict(prefix: str = "bert.", seed: int = 4, depth: int = DEPTH) -> dict[str, Tensor]:
    """Hugging Face BERT encoder keys, plus embeddings, pooler and an MLM head."""
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (25, WIDTH), "embeddings.position_embeddings.weight": (64, WIDTH),
        "embeddings.LayerNorm.weight": (WIDTH,), "embeddings.LayerNorm.bias": (WIDTH,),
        "pooler.dense.weight": (WIDTH, WIDTH),
    }
    for i in range(depth):
        p = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            shapes[p + f"attention.self.{part}.weight"] = (WIDTH, WIDTH)
            shapes[p + f"attention.self.{part}.bias"] = (WIDTH,)
        shapes.update({
            p + "attention.output.dense.weight": (WIDTH, WIDTH), p + "attention.output.dense.bias": (WIDTH,),
            p + "attention.output.LayerNorm.weight": (WIDTH,),
            p + "intermediate.dense.weight": (HIDDEN, WIDTH), p + "intermediate.dense.bias": (HIDDEN,),
            p + "output.dense.weight": (WIDTH, HIDDEN), p + "output.dense.bias": (WIDTH,),
            p + "output.LayerNorm.weight": (WIDTH,),
        })
    state_dict = {prefix + k: v for k, v in random_tensors(shapes, seed).items()}
    if prefix:
        state_dict.update(random_tensors({"cls.predictions.decoder.weight": (25, WIDTH)}, seed + 1))
    return state_dict


def expected_bert_linears(state_dict: dict[str, Tensor], prefix: str = "bert.") -> dict[str, Tensor]:
    """The auxiliary state dict a BERT checkpoint must give, built directly from its keys."""
    out = {}
    for i in range(sum(1 for k in state_dict if k.endswith("attention.self.query.weight"))):
        p = f"{prefix}encoder.layer.{i}."
        for param in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{param}"] = torch.cat(
                [state_dict[p + f"attention.self.{part}.{param}"] for part in ("query", "key", "value")])
            out[f"blocks.{i}.attn.proj.{param}"] = state_dict[p + f"attention.output.dense.{param}"]
            out[f"blocks.{i}.mlp.fc1.{param}"] = state_dict[p + f"intermediate.dense.{param}"]
            out[f"blocks.{i}.mlp.fc2.{param}"] = state_dict[p + f"output.dense.{param}"]
    return out


def expected_linears(state_dict: dict[str, Tensor], block_prefix: str) -> dict[str, Tensor]:
    """The auxiliary state dict of a timm-like layout whose blocks are ``block_prefix + N``."""
    out = {}
    for key, value in state_dict.items():
        if not key.startswith(block_prefix):
            continue
        rest = key[len(block_prefix):]
        index, _, name = rest.partition(".")
        if name.rsplit(".", 1)[0] in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            out[f"blocks.{index}.{name}"] = value
        elif name == "attn.q_bias":
            v_bias = state_dict[key[: -len("q_bias")] + "v_bias"]
            out[f"blocks.{index}.attn.qkv.bias"] = torch.cat([value, torch.zeros_like(v_bias), v_bias])
    return out


def save(state_dict_or_checkpoint: dict, path) -> None:
    """Save as safetensors (flat state dicts only) or with ``torch.save``."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state_dict_or_checkpoint.items()}, str(path))
    else:
        torch.save(state_dict_or_checkpoint, path)
