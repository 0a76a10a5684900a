"""Using a trained feed-forward image network (kind ``FEEDFORWARD``, e.g. a fast style network).

Such a model is trained by the engine on a folder of pictures like a GAN, but
it has no latent space: its "latents" are pictures. Its declared surface here:

* ``sample(x)`` maps pictures (N, 3, H, W) in [-1, 1] to pictures in [-1, 1]
  of the same size, for any H and W;
* ``generator_module()`` is the trained network (put in eval mode here).

This module loads such a network from a run folder and applies it to
picture files and folders; the command line and the plugin's studio tab both
use it, so neither needs to know which plugin trained the network.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .errors import UserError
from .image_files import list_images, read_image, write_image
from .inference import load_trained
from .model import FEEDFORWARD


def load_feedforward(run_dir: str | os.PathLike, plugin_manager: Any,
                     device: torch.device | str = "cpu",
                     warn: Callable[[Path, str], None] | None = None) -> tuple[Any, Any, int]:
    """(spec, model, step) for the newest valid checkpoint of a feed-forward run.

    Raises UserError when the folder is not a run, not a feed-forward network,
    or has no usable checkpoint.
    """
    from .runs import RunFolder
    spec = plugin_manager.get_model(RunFolder(run_dir).read_info()["model_id"])
    if spec.kind != FEEDFORWARD:  # said before any checkpoint is read
        raise UserError(f"{Path(run_dir).expanduser()} is a '{spec.id}' run ({spec.name}), "
                        "not a trained feed-forward network")
    spec, model, state = load_trained(run_dir, plugin_manager, device, warn=warn)
    for net in _modules(model):
        net.eval()
    return spec, model, int(state.get("step", 0))


def _modules(model: Any) -> list[torch.nn.Module]:
    try:
        return [model.generator_module()]
    except NotImplementedError:
        return []


@torch.no_grad()
def apply_to_tensor(model: Any, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> the network's output (1, 3, H, W) in [0, 1], on the CPU."""
    out = model.sample(image.to(model.device).float() * 2 - 1)
    return ((out.float() + 1) / 2).clamp(0, 1).cpu()


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path | None]]:
    """Files and folders -> [(picture file, the folder it came from or None)]; UserError
    naming the input that is missing or a folder without pictures."""
    found: list[tuple[Path, Path | None]] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            files = list_images(p)
            if not files:
                raise UserError(f"no images found in folder {p}")
            found += [(f, p) for f in files]
        elif p.is_file():
            found.append((p, None))
        else:
            raise UserError(f"input not found: {p}")
    if not found:
        raise UserError("no input pictures given")
    return found


def apply_to_paths(model: Any, inputs: Iterable[str | os.PathLike], out: str | os.PathLike,
                   size: int | None = None,
                   progress: Callable[[int, int, Path], None] | None = None,
                   as_folder: bool = False,
                   cancelled: Callable[[], bool] | None = None) -> tuple[list[Path], float]:
    """Apply the network to files and folders.

    One input file and ``out`` with an image suffix: write that file; otherwise
    (or with ``as_folder``) ``out`` is a folder and sub-folders of input folders
    are mirrored. ``size``: long side of each input in pixels (None: its own).
    ``cancelled()`` is polled between pictures (what is written stays).
    Returns the written paths and the mean milliseconds per picture (network only).
    """
    items = expand_inputs(inputs)
    out = Path(out).expanduser()
    single = not as_folder and len(items) == 1 and items[0][1] is None and out.suffix != ""
    if not single and out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder (several pictures need a folder)")
    device = torch.device(model.device)
    apply_to_tensor(model, torch.zeros(1, 3, 16, 16))  # warm-up: one-time set-up is not timed
    written: list[Path] = []
    net_seconds = 0.0
    for i, (path, root) in enumerate(items):
        if cancelled is not None and cancelled():
            break
        image = read_image(path, size, "input")
        _sync(device)
        t0 = time.perf_counter()
        result = apply_to_tensor(model, image)
        _sync(device)
        net_seconds += time.perf_counter() - t0
        if single:
            target = out
        else:
            rel = path.relative_to(root) if root is not None else Path(path.name)
            target = (out / rel).with_suffix(".png")
        written.append(write_image(result, target))
        if progress is not None:
            progress(i + 1, len(items), target)
    return written, 1000.0 * net_seconds / max(1, len(written))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
