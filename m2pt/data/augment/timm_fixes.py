"""A work-around for timm 1.0.31's RandAugment ``Posterize*`` ops under Pillow 13.

With ``inc1`` (``PosterizeIncreasing``) the number of bits kept is ``4 - int(level / 10 * 4)``;
with ``mstd`` the level is drawn around the magnitude and clipped to 10, so it reaches 10 and
asks for 0 bits (``Posterize`` asks for 0 at levels below 2.5). Older Pillow accepted 0 (a
mask of 0: every channel becomes 0, a black image);
Pillow 13 raises ``ValueError: bits must be between or equal to 1 and 8``. The fix keeps the
op and its old result: 0 bits (or fewer) give a black image of the same mode and size.

Only the ops of the given transform are changed; timm's tables are left alone.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageOps

POSTERIZE_OPS = ("Posterize", "PosterizeIncreasing", "PosterizeOriginal")


def posterize(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """``ImageOps.posterize`` that also accepts 0 bits (every value becomes 0), as older Pillow."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def fix_posterize(transform: Any) -> Any:
    """Replace the posterize function of every RandAugment / AutoAugment op inside ``transform``.

    Walks ``torchvision.transforms.Compose`` (``.transforms``) and timm's RandAugment
    (``.ops``) / AutoAugment (``.policy``) containers; returns ``transform`` itself.
    """
    for child in getattr(transform, "transforms", []):
        fix_posterize(child)
    ops = list(getattr(transform, "ops", []))
    for sub_policy in getattr(transform, "policy", []):
        ops.extend(sub_policy)
    for op in ops:
        if getattr(op, "name", None) in POSTERIZE_OPS:
            op.aug_fn = posterize
    return transform
