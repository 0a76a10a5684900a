"""Exports: the current grid, N fresh samples, the time-lapse as GIF/MP4, the generator.

Plain functions (no Qt): the window runs them in a background thread.
"""
from __future__ import annotations

import os

from pathlib import Path
from typing import Any

import numpy as np

from ganstudio.core.errors import UserError
from ganstudio.core.runs import RunFolder


def export_grid(array: np.ndarray, path: str | Path) -> Path:
    """Save a uint8 (H, W, C) grid as PNG."""
    from PIL import Image
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
    Image.fromarray(np.ascontiguousarray(arr)).save(path)
    return path


def _frame_stack(paths: list[Path]) -> list[np.ndarray]:
    """Frames as RGB arrays of one size (the largest; smaller grids, e.g. early ProGAN
    phases, are scaled up with nearest neighbour), with even sides for video codecs."""
    from PIL import Image
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.convert("RGB"))
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    w += w % 2
    h += h % 2
    out = []
    for im in images:
        if im.size != (w, h):
            im = im.resize((w, h), Image.Resampling.NEAREST)
        out.append(np.asarray(im, dtype=np.uint8))
    return out


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
                     max_frames: int = 240) -> Path:
    """The grids in the run's samples/ as an animated GIF or an MP4 (by the suffix);
    long runs are thinned evenly to ``max_frames`` frames."""
    import imageio.v2 as imageio
    run = RunFolder(run_dir)
    frames = pick_frames([p for _s, p in run.list_samples()], max_frames)
    if not frames:
        raise UserError(f"{run.samples_dir} holds no sample grids to make a time-lapse from")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise UserError(f"{path.name}: a time-lapse is saved as .gif or .mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    stack = _frame_stack(frames)
    if suffix == ".gif":
        imageio.mimsave(path, stack, duration=1.0 / fps, loop=0)
    else:
        try:
            with imageio.get_writer(path, fps=fps, codec="libx264", quality=8,
                                    macro_block_size=1, pixelformat="yuv420p") as writer:
                for frame in stack:
                    writer.append_data(frame)
        except (ImportError, RuntimeError, OSError) as e:
            raise UserError(f"could not write {path.name}: {e} "
                            "(MP4 needs the imageio-ffmpeg package)") from None
    return path


def export_samples(run_dir: str | Path, plugin_manager: Any, n: int, folder: str | Path,
                   seed: int | None = None) -> list[Path]:
    """``n`` new samples from the run's latest checkpoint, one PNG each."""
    from ganstudio.core.images import tensor_to_pils
    from ganstudio.core.inference import generate, load_trained
    if n < 1:
        raise UserError("the number of samples must be at least 1")
    spec, model, _state = load_trained(run_dir, plugin_manager, device="cpu")
    if spec.kind != "gan":
        raise UserError(f"run {run_dir} is a '{spec.id}' job; it has no generator to sample")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, img in enumerate(tensor_to_pils(generate(model, n, seed))):
        p = folder / f"sample_{i:05d}.png"
        img.save(p)
        out.append(p)
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
