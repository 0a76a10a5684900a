"""Single picture files: read one at its own size, write one in the format its name asks.

Shared by every face that works on whole pictures rather than a training set
(an image-to-image job's inputs and result, a feed-forward network applied to
photographs). Errors are :class:`UserError` naming the file and the reason.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .data import IMAGE_EXTENSIONS, MAX_PIXELS
from .errors import UserError

#: Suffixes :func:`write_image` can write.
WRITABLE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def read_image(path: str | os.PathLike, long_side: int | None = None,
               role: str = "image") -> torch.Tensor:
    """Decode ``path`` to (1, 3, H, W) float in [0, 1], long side ``long_side`` if given.

    EXIF orientation is applied; transparency is flattened on white; grey,
    palette and CMYK images become RGB. Raises UserError naming the file and
    its ``role`` ("content image ...").
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{role} image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise UserError(f"{role} image {path} is too large ({w}x{h} pixels)")
                if img.format == "JPEG" and long_side and img.mode in ("RGB", "L", "CMYK"):
                    img.draft(img.mode, (long_side * 2, long_side * 2))
                img.load()
                img = ImageOps.exif_transpose(img)
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P"
                                                        and "transparency" in img.info):
                    rgba = img.convert("RGBA")
                    back = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    img = Image.alpha_composite(back, rgba)
                img = img.convert("RGB")
                if long_side:
                    img = resize_long_side(img, long_side)
                arr = np.asarray(img, dtype=np.uint8).copy()
    except UserError:
        raise
    except Image.UnidentifiedImageError:
        raise UserError(f"{role} image {path} cannot be read: not an image or an "
                        "unsupported format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"{role} image {path} cannot be read: {e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise UserError(f"{role} image {path} cannot be read: {e}") from None
    return torch.from_numpy(arr).permute(2, 0, 1).float().div(255).unsqueeze(0)


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """``img`` scaled (Lanczos) so its long side is ``long_side`` pixels."""
    w, h = img.size
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return img
    return img.resize(size, Image.Resampling.LANCZOS)


def check_writable_name(path: str | os.PathLike) -> Path:
    """``path`` if its suffix names a format :func:`write_image` writes; UserError if not."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in WRITABLE_EXTENSIONS:
        raise UserError(f"cannot write {path}: use a .png, .jpg, .webp, .bmp or .tif name")
    return path


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> (H, W, 3) uint8 on the host."""
    if image.dim() == 4:
        image = image[0]
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(arr.permute(1, 2, 0).cpu().numpy())


def write_image(image: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a picture to ``path`` (format from the suffix), atomically (temp file, rename).

    ``image``: (1, 3, H, W) or (3, H, W) float in [0, 1], or an (H, W, 3) uint8 array.
    """
    path = check_writable_name(path)
    arr = image if isinstance(image, np.ndarray) else to_uint8_hwc(image)
    suffix = path.suffix.lower()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        Image.fromarray(arr).save(tmp, format=Image.registered_extensions()[suffix],
                                  **({"quality": 95} if suffix in (".jpg", ".jpeg") else {}))
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` or below it, sorted."""
    folder = Path(folder).expanduser()
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
