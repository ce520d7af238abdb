"""VideoMAE's video fine-tuning pipeline (Tong et al. 2022, ``kinetics.py``), on timm and torchvision.

Training, per clip: RandAugment ``rand-m7-n4-mstd0.5-inc1`` with the *same* operations and
magnitudes on every frame, one random resized crop (scale 0.08-1, aspect 3/4-4/3) and one
horizontal flip for all frames, normalisation, then random erasing (p 0.25, per-pixel noise,
drawn per frame as VideoMAE does); each decoded video gives ``repeats`` (2) such clips
(repeated augmentation). Mixup / cutmix act per batch (``batch_mixup``).

Test: ``clips`` windows evenly spaced in time x ``crops`` squares evenly spaced along the
long side of the resized frames, whose softmax scores are averaged (``view_reduction``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode, RandomResizedCrop
from torchvision.transforms import functional as TF

from m2pt.data.augment.timm_fixes import fix_posterize
from m2pt.data.seeding import capture_rng_states, restore_rng_states

VIDEOMAE_RAND_AUGMENT = "rand-m7-n4-mstd0.5-inc1"
VIDEOMAE_RANDOM_ERASING = 0.25
VIDEOMAE_TEST_VIEWS = (5, 3)  # clips x crops on Kinetics-400
VIDEOMAE_REPEATS = 2  # repeated augmentation: augmented clips per decoded video (``num_sample``)


def resize_short_side(frames: torch.Tensor, short_side: int) -> torch.Tensor:
    """Resize ``[T, C, H, W]`` float frames so that their short side is ``short_side`` (bilinear)."""
    height, width = frames.shape[-2:]
    scale = short_side / min(height, width)
    size = (max(short_side, round(height * scale)), max(short_side, round(width * scale)))
    if size == (height, width):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=True)


def evenly_spaced(spare: int, count: int) -> list[int]:
    """``count`` offsets in ``[0, spare]``: the centre for one, else from 0 to ``spare`` evenly (floored)."""
    if count == 1:
        return [spare // 2]
    return [int(k * spare / (count - 1)) for k in range(count)]


def spatial_crops(frames: torch.Tensor, size: int, crops: int) -> list[torch.Tensor]:
    """``crops`` squares of ``size`` along the long side of ``[..., H, W]`` (centred on the short side)."""
    height, width = frames.shape[-2:]
    if height >= width:
        left = (width - size) // 2
        return [frames[..., top:top + size, left:left + size] for top in evenly_spaced(height - size, crops)]
    top = (height - size) // 2
    return [frames[..., top:top + size, left:left + size] for left in evenly_spaced(width - size, crops)]


class VideoMAETrainTransform:
    """uint8 frames ``[T, H, W, 3]`` -> augmented, normalised clip ``[3, T, S, S]``.

    Args:
        image_size: Output height and width ``S``.
        mean: Per-channel mean of [0, 1] frames.
        std: Per-channel standard deviation.
        short_side: Frames are first resized to this short side (RandAugment runs at that size).
        rand_augment: timm RandAugment config string; "" disables it.
        scale: Area range of the random resized crop.
        ratio: Aspect-ratio range of the random resized crop.
        flip: Horizontal flip probability.
        random_erasing: Random erasing probability (per frame).
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], short_side: int | None = None,
                 rand_augment: str = VIDEOMAE_RAND_AUGMENT, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: float = 0.5,
                 random_erasing: float = VIDEOMAE_RANDOM_ERASING) -> None:
        from timm.data import rand_augment_transform
        from timm.data.random_erasing import RandomErasing

        self.image_size, self.short_side = image_size, short_side or image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.scale, self.ratio, self.flip = scale, ratio, flip
        hparams = {"translate_const": int(self.short_side * 0.45), "img_mean": tuple(round(255 * m) for m in mean),
                   "interpolation": Image.BICUBIC}
        self.rand_augment = fix_posterize(rand_augment_transform(rand_augment, hparams)) if rand_augment else None
        self.erase = (RandomErasing(random_erasing, mode="pixel", max_count=1, device="cpu")
                      if random_erasing > 0 else None)

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        clip = resize_short_side(clip, self.short_side)
        if self.rand_augment is not None:
            clip = self._same_rand_augment(clip.round().clamp(0, 255).to(torch.uint8))
        clip = clip.div(255.0)
        top, left, height, width = RandomResizedCrop.get_params(clip, list(self.scale), list(self.ratio))
        clip = TF.resized_crop(clip, top, left, height, width, [self.image_size, self.image_size],
                               interpolation=InterpolationMode.BILINEAR, antialias=True)
        if torch.rand(1).item() < self.flip:
            clip = clip.flip(-1)
        clip = (clip - self.mean) / self.std
        if self.erase is not None:
            clip = self.erase(clip)
        return clip.permute(1, 0, 2, 3).contiguous()

    def _same_rand_augment(self, clip: torch.Tensor) -> torch.Tensor:
        """RandAugment each frame with the generators rewound, so every frame gets the same ops."""
        start = capture_rng_states()
        out = []
        for frame in clip:
            restore_rng_states(start)
            image = self.rand_augment(Image.fromarray(frame.permute(1, 2, 0).numpy()))
            out.append(torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1))
        return torch.stack(out).float()

    def __repr__(self) -> str:
        return (f"VideoMAETrainTransform(image_size={self.image_size}, short_side={self.short_side}, "
                f"rand_augment={self.rand_augment is not None}, scale={self.scale}, flip={self.flip}, "
                f"random_erasing={self.erase is not None})")
