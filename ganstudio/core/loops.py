"""Seamless loop videos (MP4 or GIF) through points of a generator's latent space.

Frames are drawn in small batches and streamed to the writer (a long loop never
sits in memory whole); the file is written under a temporary name in the
target folder and renamed when complete, so a cancelled or failed render leaves
no half file under the name asked for.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import UserError
from .images import to_uint8
from .latents import Explorer, loop_latents, truncate
from .media import VideoWriter

SUFFIXES = (".mp4", ".gif")
MAX_FRAMES = 100_000


@dataclass
class LoopResult:
    path: Path | None     # None when cancelled
    frames: int
    seconds: float        # time it took


def _resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    if not size or images.shape[-1] == size:
        return images
    mode = "nearest" if size >= 2 * images.shape[-1] else "bilinear"
    kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
    return F.interpolate(images, size=(size, size), mode=mode, **kwargs)


def check_video_path(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path.name}: a loop is written as .mp4 or .gif")
    from .exporting import check_writable
    return check_writable(path)


def render_loop(explorer: Explorer, keys: torch.Tensor, path: str | Path, *, seconds: float = 8.0,
                fps: float = 30.0, psi: float = 1.0, size: int | None = None, ease: bool = False,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None, batch: int = 16) -> LoopResult:
    """Write a loop through ``keys`` (K >= 2 latents, untruncated) to ``path``.

    ``progress(done, total)`` after each batch of frames; ``cancelled()`` polled
    between batches (the temporary file is removed and ``path`` is None).
    """
    path = check_video_path(path)
    if seconds <= 0 or fps <= 0:
        raise UserError("a loop needs a positive length and frame rate")
    frames = int(round(seconds * fps))
    if not 2 <= frames <= MAX_FRAMES:
        raise UserError(f"{frames} frames: a loop has between 2 and {MAX_FRAMES:,}")
    z = truncate(loop_latents(keys, frames, explorer.distribution, ease), psi,
                 explorer.distribution)
    t0 = time.perf_counter()
    with VideoWriter(path, fps) as writer:
        for start in range(0, frames, batch):
            if cancelled is not None and cancelled():
                return LoopResult(None, start, time.perf_counter() - t0)
            images = _resize(explorer.images(z[start:start + batch]), size)
            for frame in to_uint8(images).permute(0, 2, 3, 1).numpy():
                writer.append(frame)
            if progress is not None:
                progress(min(start + batch, frames), frames)
        path = writer.commit()
    return LoopResult(path, frames, time.perf_counter() - t0)
