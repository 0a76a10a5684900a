"""Reading and writing the pictures of a style job, with user-facing errors."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ganstudio.core.data import IMAGE_EXTENSIONS, MAX_PIXELS
from ganstudio.core.errors import UserError

SAVE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def load_image(path: str | os.PathLike, long_side: int | None = None,
               role: str = "image") -> torch.Tensor:
    """Decode ``path`` to (1, 3, H, W) float in [0, 1], long side ``long_side`` if given.

    EXIF orientation is applied; transparency is flattened on white; grey,
    palette and CMYK images become RGB. Raises UserError naming the file.
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
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                    rgba = img.convert("RGBA")
                    back = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    img = Image.alpha_composite(back, rgba)
                img = img.convert("RGB")
                if long_side:
                    img = resize_long_side(img, long_side)
                arr = np.asarray(img, dtype=np.uint8).copy()
    except UserError:
        raise
    except (Image.UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise UserError(f"{role} image {path} cannot be read: "
                        f"{'not an image or an unsupported format' if isinstance(e, Image.UnidentifiedImageError) else e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise UserError(f"{role} image {path} cannot be read: {e}") from None
    return torch.from_numpy(arr).permute(2, 0, 1).float().div(255).unsqueeze(0)


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    w, h = img.size
    scale = long_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return img
    return img.resize(size, Image.Resampling.LANCZOS)


def resize_tensor(image: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize (N, C, H, W) so the long side is ``long_side`` (antialiased when shrinking)."""
    h, w = image.shape[-2:]
    scale = long_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size == (h, w):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False,
                         antialias=scale < 1)


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write (1, 3, H, W) or (3, H, W) in [0, 1] to ``path`` (format from the suffix)."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in SAVE_EXTENSIONS:
        raise UserError(f"cannot write {path}: use a .png, .jpg, .webp, .bmp or .tif name")
    if image.dim() == 4:
        image = image[0]
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    arr = arr.permute(1, 2, 0).cpu().numpy()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        Image.fromarray(arr).save(tmp, format=Image.registered_extensions()[path.suffix.lower()],
                                  **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` or below it, sorted."""
    folder = Path(folder).expanduser()
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


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
