"""Masked autoencoders around any m2pt modality model (MAE, VideoMAE, AudioMAE, Point-MAE style).

The encoder is the modality model itself (built without a head): its tokenizer gives tokens
with position embeddings, a random subset of them passes its blocks, and a small decoder
predicts the masked ones. After pretraining, the encoder's blocks are the auxiliary weights.
"""

from __future__ import annotations

from typing import Optional

import torch
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn


def patchify_2d(x: Tensor, patch: int) -> Tensor:
    """[B, C, H, W] -> [B, (H/p)(W/p), p*p*C] in the Conv2d token order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def patchify_3d(x: Tensor, tubelet: int, patch: int) -> Tensor:
    """[B, C, T, H, W] -> [B, (T/t)(H/p)(W/p), t*p*p*C] in the Conv3d token order."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, tubelet * patch * patch * c)


def random_masking(batch: int, length: int, ratio: float, device: torch.device,
                   generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """Per-sample random split: (visible indices [B, keep], masked indices [B, length - keep])."""
    keep = max(1, int(round(length * (1 - ratio))))
    noise = torch.rand(batch, length, generator=generator, device="cpu" if generator is not None else device)
    order = noise.to(device).argsort(dim=1)
    return order[:, :keep], order[:, keep:]


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """Select tokens ``index`` [B, K] of ``x`` [B, N, ...]."""
    shape = index.shape + x.shape[2:]
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand(shape))


def chamfer_l2(pred: Tensor, target: Tensor) -> Tensor:
    """Symmetric Chamfer distance (squared L2) between point sets [M, K, 3], averaged."""
    dist = torch.cdist(pred.float(), target.float()).pow(2)
    return dist.min(dim=2).values.mean() + dist.min(dim=1).values.mean()


class MaskedAutoencoder(nn.Module):
    """Encoder = a modality model without head; decoder = a few small transformer blocks.

    Args:
        encoder: An m2pt model from ``create_model(modality, ..., num_classes=0)``.
        modality: ``"image"``, ``"video"``, ``"audio"`` or ``"point"``.
        mask_ratio: Fraction of tokens hidden from the encoder.
        decoder_dim: Decoder width.
        decoder_depth: Decoder blocks.
        decoder_heads: Decoder attention heads.
        norm_pix_loss: Normalise each target patch by its mean and std (image/video/audio).
    """

    def __init__(self, encoder: nn.Module, modality: str, mask_ratio: float = 0.75, decoder_dim: int = 128,
                 decoder_depth: int = 2, decoder_heads: int = 4, norm_pix_loss: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        dim = encoder.embed_dim
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        if decoder_dim % decoder_heads:
            decoder_heads = 1
        self.decoder_blocks = nn.Sequential(*[Block(decoder_dim, decoder_heads, qkv_bias=True)
                                              for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        if modality == "point":
            self.decoder_pos = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, decoder_dim))
            num_tokens, patch_dim = encoder.num_groups, encoder.group_size * 3
        else:
            num_tokens, patch_dim = self._token_geometry()
            self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_tokens, decoder_dim))
            trunc_normal_(self.decoder_pos_embed, std=0.02)
        self.decoder_pred = nn.Linear(decoder_dim, patch_dim)
        trunc_normal_(self.mask_token, std=0.02)

    def pretrained_encoder(self) -> nn.Module:
        """The encoder to save after pretraining, with the final norm trained here.

        Image encoders are returned as MAE publishes them: a class-token ViT whose ``norm`` is
        :attr:`encoder_norm`, so a class-token linear probe (MAE's ``main_linprobe.py``) starts from
        the trained norm, and average-pooling fine-tuning leaves it unused and builds a fresh
        ``fc_norm``, as MAE's fine-tuning does. The other modalities pool by average and have no
        final per-token norm; their encoders are returned as built.
        """
        if self.modality != "image":
            return self.encoder
        from m2pt.models import create_model_from_args

        args = {**self.encoder.m2pt_model_args, "global_pool": "token", "fc_norm": False}
        encoder = create_model_from_args(args).to(self.encoder.pos_embed.device)
        trained = {k: v for k, v in self.encoder.state_dict().items() if not k.startswith(("fc_norm.", "norm."))}
        result = encoder.load_state_dict(trained, strict=False)
        if result.unexpected_keys or any(not k.startswith("norm.") for k in result.missing_keys):
            raise RuntimeError(f"the class-token encoder does not take the trained weights: {result}")
        encoder.norm.load_state_dict(self.encoder_norm.state_dict())
        return encoder

    def _token_geometry(self) -> tuple[int, int]:
        """(number of tokens, values per patch) of the encoder's tokenizer."""
        channels, *spatial = self.encoder.pretrained_cfg["input_size"]
        kernel = self.encoder.patch_embed.proj.kernel_size
        num_tokens = 1
        for size, k in zip(spatial, kernel):
            num_tokens *= size // k
        patch_dim = channels
        for k in kernel:
            patch_dim *= k
        return num_tokens, patch_dim

    def tokens(self, x: Tensor) -> Tensor:
        """Tokens with position embedding, no cls token (image: timm patch_embed + pos_embed)."""
        if self.modality == "image":
            return self.encoder.patch_embed(x) + self.encoder.pos_embed[:, self.encoder.num_prefix_tokens:]
        return self.encoder.embed_tokens(x)

    def targets(self, x: Tensor) -> Tensor:
        """Pixel / fbank / tubelet patches [B, N, patch_dim] in token order."""
        kernel = self.encoder.patch_embed.proj.kernel_size
        patches = patchify_3d(x, kernel[0], kernel[1]) if x.dim() == 5 else patchify_2d(x, kernel[0])
        if self.norm_pix_loss:
            mean, var = patches.mean(dim=-1, keepdim=True), patches.var(dim=-1, keepdim=True)
            patches = (patches - mean) / (var + 1e-6).sqrt()
        return patches

    def decode(self, latent: Tensor, visible: Tensor, masked: Tensor, pos: Tensor) -> Tensor:
        """Predictions for the masked tokens [B, M, patch_dim]; ``pos`` is the decoder position [B|1, N, Dd]."""
        b, n = latent.shape[0], visible.shape[1] + masked.shape[1]
        x = self.decoder_embed(latent)
        full = self.mask_token.to(x.dtype).expand(b, n, -1).clone()  # x is bf16 under CUDA autocast
        full.scatter_(1, visible.unsqueeze(-1).expand_as(x), x)
        full = self.decoder_norm(self.decoder_blocks(full + pos.expand(b, -1, -1)))
        return self.decoder_pred(gather_tokens(full, masked))

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """The reconstruction loss on the masked tokens of a batch."""
        if self.modality == "point":
            return self._forward_points(x, generator)
        tokens = self.tokens(x)
        visible, masked = random_masking(tokens.shape[0], tokens.shape[1], self.mask_ratio, x.device, generator)
        latent = self.encoder_norm(self.encoder.blocks(gather_tokens(tokens, visible)))
        pred = self.decode(latent, visible, masked, self.decoder_pos_embed)
        target = gather_tokens(self.targets(x), masked)
        return (pred.float() - target.float()).pow(2).mean()

    def _forward_points(self, points: Tensor, generator: Optional[torch.Generator]) -> Tensor:
        neighborhood, center = self.encoder.group(points)
        tokens, pos = self.encoder.embed_groups(neighborhood, center)
        visible, masked = random_masking(tokens.shape[0], tokens.shape[1], self.mask_ratio, points.device, generator)
        latent = self.encoder.forward_blocks(gather_tokens(tokens, visible), gather_tokens(pos, visible))
        latent = self.encoder_norm(latent)
        pred = self.decode(latent, visible, masked, self.decoder_pos(center))
        target = gather_tokens(neighborhood, masked)
        k = self.encoder.group_size
        return chamfer_l2(pred.reshape(-1, k, 3), target.reshape(-1, k, 3))
