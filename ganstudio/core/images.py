"""Image helpers: tensors to uint8 grids, PNG writing, upscaling for display."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .safe_files import atomic_file


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) floats in [-1, 1] -> uint8 (N, C, H, W) on the same device."""
    x = images.detach().float().clamp(-1, 1)
    return ((x + 1) * 127.5).round().to(torch.uint8)


#: Height in pixels of the strip under each cell that holds its label.
LABEL_HEIGHT = 12


def make_grid(images: torch.Tensor, *, nrow: int | None = None, padding: int = 2,
              min_cell: int = 0, labels: list[str] | None = None) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] into one (H', W', C) uint8 array.

    ``min_cell`` upsamples small images (nearest) so each cell is at least that
    many pixels: a 4x4 ProGAN sample stays visible on screen. ``labels``: one short
    text per image (e.g. its seed), drawn in a strip under it.
    """
    if labels is not None:
        return _labelled_grid(images, labels, nrow=nrow, padding=padding, min_cell=min_cell)
    if images.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(images.shape)}")
    x = images.detach().float()
    n, c, h, w = x.shape
    if min_cell and max(h, w) < min_cell:
        factor = math.ceil(min_cell / max(h, w))
        x = F.interpolate(x, scale_factor=factor, mode="nearest")
        h, w = x.shape[-2:]
    x = to_uint8(x).cpu()
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = nrow
    rows = int(math.ceil(n / ncol))
    grid = torch.zeros(c, rows * (h + padding) + padding, ncol * (w + padding) + padding,
                       dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid.permute(1, 2, 0).contiguous().numpy()


def _labelled_grid(images: torch.Tensor, labels: list[str], *, nrow: int | None,
                   padding: int, min_cell: int) -> np.ndarray:
    from PIL import ImageDraw
    if len(labels) != images.shape[0]:
        raise ValueError(f"{len(labels)} labels for {images.shape[0]} images")
    cells = [make_grid(images[i:i + 1], nrow=1, padding=0, min_cell=min_cell)
             for i in range(images.shape[0])]
    h, w, c = cells[0].shape
    n = len(cells)
    ncol = nrow or max(1, int(math.ceil(math.sqrt(n))))
    rows = int(math.ceil(n / ncol))
    cell_h = h + LABEL_HEIGHT
    grid = np.zeros((rows * (cell_h + padding) + padding, ncol * (w + padding) + padding, c),
                    dtype=np.uint8)
    for i, cell in enumerate(cells):
        r, col = divmod(i, ncol)
        top, left = padding + r * (cell_h + padding), padding + col * (w + padding)
        grid[top:top + h, left:left + w] = cell
    canvas = array_to_pil(grid)
    draw = ImageDraw.Draw(canvas)
    white = 255 if c == 1 else (255, 255, 255)
    for i, text in enumerate(labels):
        r, col = divmod(i, ncol)
        top, left = padding + r * (cell_h + padding) + h, padding + col * (w + padding)
        draw.text((left + 1, top + 1), str(text)[: max(1, w // 6)], fill=white)
    out = np.asarray(canvas)
    return out[:, :, None] if out.ndim == 2 else out


def array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    return Image.fromarray(array)


def save_png(array: np.ndarray, path: str | os.PathLike, *,
             within: str | os.PathLike | None = None) -> Path:
    """Write a uint8 (H, W, C) array as PNG atomically: a fresh temporary file created
    without following links, then renamed (see :mod:`ganstudio.core.safe_files`).

    ``within``: the trusted folder above ``path`` (a run folder); the folders between
    are entered without following links and created when missing. Raises OSError naming
    ``path`` (never the temporary file), UnsafeFileError when ``path`` is a link."""
    path = Path(path)
    image = array_to_pil(array)
    with atomic_file(path, "wb", within=within, fsync=False) as f:
        image.save(f, format="PNG")
    return path


def tensor_to_pils(images: torch.Tensor) -> list[Image.Image]:
    """(N, C, H, W) in [-1, 1] -> list of PIL images."""
    arr = to_uint8(images).cpu().permute(0, 2, 3, 1).numpy()
    return [array_to_pil(a) for a in arr]
