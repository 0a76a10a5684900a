"""Reading and writing the pictures of a style job, with user-facing errors.

The file reading and writing is GAN Studio's own (:mod:`ganstudio.core.image_files`),
shared with the command line; this module adds what only style jobs need.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ganstudio.core.errors import UserError
from ganstudio.core.image_files import (WRITABLE_EXTENSIONS as SAVE_EXTENSIONS, list_images,
                                        read_image as load_image, resize_long_side,
                                        write_image as save_image)

__all__ = ["SAVE_EXTENSIONS", "list_images", "load_image", "resize_long_side", "save_image",
           "resize_tensor", "split_paths", "parse_numbers"]


def resize_tensor(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize (N, C, H, W) so the long side is ``long_side`` (antialiased when shrinking)."""
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size == (h, w):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False,
                         antialias=scale < 1)


def split_paths(value: str) -> list[str]:
    """Several paths in one setting, separated by '|' (a character no path uses)."""
    return [p.strip() for p in str(value or "").split("|") if p.strip()]


def parse_numbers(value: str, what: str) -> list[float]:
    """'0.7, 0.3' -> [0.7, 0.3]; UserError naming the setting otherwise."""
    items = [v.strip() for v in str(value or "").replace(";", ",").split(",") if v.strip()]
    try:
        nums = [float(v) for v in items]
    except ValueError:
        raise UserError(f"setting '{what}': expected numbers separated by commas, "
                        f"got {value!r}") from None
    if any(n < 0 or n != n for n in nums):
        raise UserError(f"setting '{what}': weights must be 0 or more, got {value!r}")
    return nums
