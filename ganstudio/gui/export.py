"""Exports: the current grid, N fresh samples, the time-lapse as GIF/MP4, the generator.

Plain functions (no Qt): the window runs them in a background thread.
"""
from __future__ import annotations

import os

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ganstudio.core.errors import UserError
from ganstudio.core.media import (VIDEO_SUFFIXES, OutputSize, largest_size, read_frames,
                                  spread, write_png, write_video)
from ganstudio.core.runs import RunFolder

#: A time-lapse of more frames than this is refused (an hour at 30 fps).
MAX_VIDEO_FRAMES = 108_000


def export_grid(array: np.ndarray, path: str | Path, size: OutputSize = OutputSize()) -> Path:
    """Save a uint8 (H, W, C) image (a grid, or one sample) as PNG at ``size``."""
    return write_png(array, path, size)


def pick_frames(paths: list[Path], max_frames: int) -> list[Path]:
    """At most ``max_frames`` of ``paths``, evenly spaced, the first and the last kept.

    A run that saves a grid every few seconds for hours holds thousands; all of
    them in memory would take gigabytes and the file would be huge."""
    if max_frames < 2 or len(paths) <= max_frames:
        return list(paths)
    last = len(paths) - 1
    picks = sorted({round(i * last / (max_frames - 1)) for i in range(max_frames)})
    return [paths[i] for i in picks]


def export_timelapse(run_dir: str | Path, path: str | Path, fps: float = 8.0,
                     max_frames: int = 240, *, seconds: float | None = None,
                     size: OutputSize = OutputSize(),
                     progress: Callable[[int, int], None] | None = None,
                     cancelled: Callable[[], bool] | None = None) -> Path | None:
    """The grids in the run's samples/ as an animated GIF or an MP4 (by the suffix).

    With ``seconds``, the video lasts that long at ``fps``: the grids are spread
    evenly over its frames (held longer when there are fewer grids than frames);
    without it, every grid is one frame, long runs thinned evenly to ``max_frames``.
    Grids of different sizes (early ProGAN phases) are scaled to the largest, then
    the whole to ``size``. Streams frames; returns None when cancelled."""
    run = RunFolder(run_dir)
    grids = [p for _s, p in run.list_samples()]
    if not grids:
        raise UserError(f"{run.samples_dir} holds no sample grids to make a time-lapse from")
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"{path.name}: a time-lapse is saved as .gif or .mp4")
    if seconds is not None:
        if not seconds > 0:
            raise UserError(f"a time-lapse lasts more than 0 seconds, got {seconds:g}")
        count = max(2, int(round(seconds * fps)))
        if count > MAX_VIDEO_FRAMES:
            raise UserError(f"{count:,} frames is more than a time-lapse holds "
                            f"({MAX_VIDEO_FRAMES:,}); shorten it or lower the frame rate")
        frames = spread(grids, count)
    else:
        frames = pick_frames(grids, max_frames)
    return write_video(read_frames(frames), len(frames), path, fps=fps, size=size,
                       source=largest_size(sorted(set(frames))), progress=progress,
                       cancelled=cancelled)


def export_samples(run_dir: str | Path, plugin_manager: Any, n: int, folder: str | Path,
                   seed: int | None = None, size: OutputSize = OutputSize(),
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """``n`` new samples from the run's latest checkpoint, one PNG each, at ``size``."""
    from ganstudio.core.images import to_uint8
    from ganstudio.core.inference import generate, load_trained
    if n < 1:
        raise UserError("the number of samples must be at least 1")
    spec, model, _state = load_trained(run_dir, plugin_manager, device="cpu")
    if spec.kind != "gan":
        raise UserError(f"run {run_dir} is a '{spec.id}' job; it has no generator to sample")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = to_uint8(generate(model, n, seed)).cpu().permute(0, 2, 3, 1).numpy()
    out = []
    for i, arr in enumerate(arrays):
        out.append(write_png(arr, folder / f"sample_{i:05d}.png", size))
        if progress is not None:
            progress(i + 1, n)
    return out


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def export_generator(run_dir: str | Path, plugin_manager: Any, path: str | Path) -> Path:
    """The trained generator's weights as .safetensors or .pt (a plain state_dict)."""
    import torch
    from ganstudio.core.inference import load_trained
    spec, model, _state = load_trained(run_dir, plugin_manager, device="cpu")
    from ganstudio.core.model import FOLDER_KINDS
    if spec.kind not in FOLDER_KINDS:  # folder-trained models declare generator_module()
        raise UserError(f"model '{spec.id}' has no generator to export")
    state = {k: v.detach().cpu().contiguous().clone()
             for k, v in model.generator_module().state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file
        meta = {"model_id": spec.id, "plugin": spec.plugin, "format": "generator state_dict"}
        save_file(state, str(path), metadata=meta)
        # safetensors writes owner-only files; give the export the usual permissions
        # (what the user's umask allows), like the .pt file beside it.
        os.chmod(path, 0o666 & ~_umask())
    elif path.suffix.lower() in (".pt", ".pth"):
        torch.save(state, path)
    else:
        raise UserError(f"{path.name}: weights are saved as .safetensors or .pt")
    return path
