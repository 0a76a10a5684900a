"""Decoding one picture for training: any mode to 8-bit grey or RGB, square, resized.

:func:`prepare_image` never raises: whatever a damaged or hostile file makes the
decoder do becomes a reason in the dataset report. It applies the EXIF
orientation, converts 16-bit, float, palette, CMYK and transparent pictures
(transparency flattened on white), crops or pads to a square, resizes with
Lanczos, and tells whether the picture is greyscale (for the dataset summary).
"""
from __future__ import annotations

import stat
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

#: Images with more pixels than this are refused (decompression-bomb guard). Pillow's
#: own guard (``Image.MAX_IMAGE_PIXELS``, about 89 million pixels) applies as well.
MAX_PIXELS = 16384 * 16384
#: Images whose short side is below this are skipped as unsuitable.
MIN_SIDE = 8
#: Images above this many pixels are decoded one at a time: eight decoder threads
#: each holding a 60-megapixel photo would need gigabytes at once.
BIG_IMAGE_PIXELS = 24_000_000
#: Largest difference between colour channels (0..255) still taken for grey: JPEG
#: compression leaves small differences in a picture that was grey.
GREY_TOLERANCE = 3

ImageFile.LOAD_TRUNCATED_IMAGES = False

# ``warnings.catch_warnings`` changes process-wide state; threads entering and leaving it
# in an interleaved order can leave a filter installed for good. Opening (a header
# read) therefore happens under this lock; decoding does not.
_OPEN_LOCK = threading.Lock()
_BIG_IMAGE_LOCK = threading.Lock()


def _to_mode(img: Image.Image, channels: int, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(arr.max()) if arr.size else 0.0
        if mode.startswith("I;16"):
            hi = 65535.0
        elif mode == "F" and top <= 1.0:
            hi = 1.0                    # floating-point pictures usually hold 0..1
        elif top <= 255:
            hi = 255.0
        else:
            hi = 65535.0 if top <= 65535 else top
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
        notes.append(f"{mode} converted to 8-bit")
    elif mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        notes.append("palette converted")
    elif mode == "CMYK":
        img = img.convert("RGB")
        notes.append("CMYK converted to RGB")
    elif mode in ("LA", "PA"):
        img = img.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGB")
        notes.append(f"{mode} converted to RGB")
    if img.mode == "RGBA":
        # Transparent areas become white: the usual page an artist's cut-out sits on.
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        img = background
        notes.append("transparency flattened on white")
    if channels == 1 and img.mode != "L":
        img = img.convert("L")
    elif channels == 3 and img.mode != "RGB":
        img = img.convert("RGB")
    return img


def _square(img: Image.Image, fit: str, channels: int) -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    if fit == "pad":
        side = max(w, h)
        fill = 0 if channels == 1 else (0, 0, 0)
        canvas = Image.new(img.mode, (side, side), fill)
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        return canvas
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def prepare_image(path: Path, resolution: int, channels: int, fit: str,
                  facts: dict | None = None) -> tuple[np.ndarray | None, str, list[str]]:
    """Decode one file to (C, R, R) uint8; or (None, reason, []) if it cannot be used.

    Never raises: whatever a damaged or hostile file makes the decoder do becomes
    a reason in the dataset report. ``facts``, when given, receives ``"grey"``: whether
    the picture is greyscale (a grey mode, or colour channels equal within
    :data:`GREY_TOLERANCE`).
    """
    notes: list[str] = []
    try:
        return _prepare_image(path, resolution, channels, fit, notes, facts)
    except Image.DecompressionBombError as e:
        return None, f"image too large (decompression bomb guard): {e}", []
    except Image.DecompressionBombWarning as e:
        return None, f"image too large (decompression bomb guard): {e}", []
    except PermissionError:
        return None, "permission denied", []
    except FileNotFoundError:
        return None, "file disappeared while reading", []
    except IsADirectoryError:
        return None, "not a regular file (a folder)", []
    except Image.UnidentifiedImageError:
        return None, "not an image, or a format that cannot be read", []
    except MemoryError:
        return None, "not enough memory to decode this image", []
    except OSError as e:
        msg = str(e) or e.__class__.__name__
        if "truncated" in msg.lower() or "broken data stream" in msg.lower():
            return None, f"truncated or damaged image ({msg})", []
        return None, f"cannot decode: {msg}", []
    except Exception as e:  # noqa: BLE001 - decoders raise all sorts on hostile input
        return None, f"cannot decode: {e.__class__.__name__}: {e}", []


def _prepare_image(path: Path, resolution: int, channels: int, fit: str, notes: list[str],
                   facts: dict | None = None) -> tuple[np.ndarray | None, str, list[str]]:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file (a device, pipe or socket named like an image)", notes
    if st.st_size == 0:
        return None, "empty file (0 bytes)", notes
    with _OPEN_LOCK, warnings.catch_warnings():
        # Pillow warns above Image.MAX_IMAGE_PIXELS and raises at twice that; both refuse.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(path)
    with img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            return None, (f"image too large ({w}x{h} pixels; the limit of {MAX_PIXELS:,} "
                          "pixels guards against decompression bombs)"), notes
        if min(w, h) < MIN_SIDE:
            return None, f"image too small ({w}x{h}; at least {MIN_SIDE} px per side)", notes
        if getattr(img, "n_frames", 1) > 1:
            notes.append("animated: first frame used")
            img.seek(0)
        if img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
            # Decode at a reduced scale when the file is much larger than
            # needed: a 4000 px photo decodes ~8x faster for a 64 px set.
            img.draft(img.mode, (resolution * 2, resolution * 2))
        big = img.size[0] * img.size[1] > BIG_IMAGE_PIXELS
        if big:
            with _BIG_IMAGE_LOCK:
                img.load()
                arr = _finish(img, resolution, channels, fit, notes, facts)
        else:
            img.load()
            arr = _finish(img, resolution, channels, fit, notes, facts)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), "", notes


_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _colour_is_grey(img: Image.Image) -> bool:
    """True when a colour-mode picture has (nearly) equal channels, judged on a small copy."""
    small = img.copy()
    small.thumbnail((64, 64))
    return _array_is_grey(np.asarray(small.convert("RGB"), dtype=np.uint8))


def _array_is_grey(arr: np.ndarray) -> bool:
    if arr.ndim == 2 or arr.shape[-1] == 1:
        return True
    a = arr.astype(np.int16)
    spread = np.maximum(np.abs(a[..., 0] - a[..., 1]), np.abs(a[..., 1] - a[..., 2]))
    return int(spread.max(initial=0)) <= GREY_TOLERANCE


def _finish(img: Image.Image, resolution: int, channels: int, fit: str,
            notes: list[str], facts: dict | None = None) -> np.ndarray:
    """Orientation, colour mode, square, size: the decoded image as (R, R[, C]) uint8."""
    orientation = _orientation(img)
    if 2 <= orientation <= 8:  # 1 is upright; other values are not orientations
        try:
            img = ImageOps.exif_transpose(img)
            notes.append(f"turned upright by its EXIF orientation ({orientation})")
        except Exception as e:  # noqa: BLE001 - damaged EXIF must not lose a good picture
            notes.append(f"EXIF orientation unreadable ({e.__class__.__name__}); used as stored")
    grey_mode = img.mode in _GREY_MODES
    if facts is not None and not grey_mode and channels == 1:
        facts["grey"] = _colour_is_grey(img)  # the colour is gone after the conversion
    img = _to_mode(img, channels, notes)
    img = _square(img, fit, channels)
    img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    arr = np.asarray(img, dtype=np.uint8)
    if facts is not None and "grey" not in facts:
        facts["grey"] = grey_mode or _array_is_grey(arr)
    return arr


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001
        return 1
