"""A generated folder of JPEGs for the benchmark (no download, same on every machine).

The pictures are smooth colour fields with a few shapes and a little grain:
cheap to make, compressed like small photographs (a few kB each), and varied.
They live in one class sub-folder (``<root>/images/``) because torchvision's
``ImageFolder``, which the classic loop uses, wants one folder per class.
A ``bench-folder.json`` marker lets a second run reuse the folder as is.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MARKER = "bench-folder.json"


def _picture(index: int, size: int, seed: int) -> Image.Image:
    rng = np.random.default_rng((seed, index))
    # A 4x4 field of colours blown up smoothly, then shapes and grain on top.
    field = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    img = Image.fromarray(field, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        w, h = (int(v) for v in rng.integers(size // 8, size // 2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    arr = np.asarray(img, dtype=np.int16)
    arr = arr + rng.integers(-6, 7, arr.shape, dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def make_jpeg_folder(root: str | os.PathLike, count: int, size: int = 64, *, seed: int = 0,
                     quality: int = 90, workers: int | None = None) -> tuple[Path, float]:
    """Create (or reuse) ``root/images/*.jpg``: ``count`` JPEGs of ``size`` px.

    Returns (root, seconds spent; 0.0 when an identical folder was reused).
    """
    root = Path(root)
    wanted = {"count": int(count), "size": int(size), "seed": int(seed), "quality": int(quality)}
    marker = root / MARKER
    sub = root / "images"
    if marker.exists():
        try:
            if json.loads(marker.read_text()) == wanted and \
                    sum(1 for _ in sub.glob("*.jpg")) == count:
                return root, 0.0
        except (OSError, ValueError):
            pass
    t0 = time.perf_counter()
    sub.mkdir(parents=True, exist_ok=True)
    for old in sub.glob("*.jpg"):
        old.unlink()

    def write(i: int) -> None:
        _picture(i, size, seed).save(sub / f"img_{i:06d}.jpg", quality=quality)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2)) as pool:
        list(pool.map(write, range(count)))
    marker.write_text(json.dumps(wanted))
    return root, time.perf_counter() - t0
