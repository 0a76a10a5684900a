"""What the style plugin's studio tab does besides running jobs: save a picture, apply a
trained fast style network, export one to ONNX. Qt-free, so each is testable alone
and runs in a studio background task."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganstudio.core.image_files import read_image, to_uint8_hwc, write_image


def save_picture(array: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 picture; the format follows the name (UserError if unknown)."""
    return write_image(np.ascontiguousarray(array), path)


@dataclass
class Applied:
    written: list[Path]
    ms: float                       # mean milliseconds per picture (network only)
    first: np.ndarray | None        # the first written picture, (H, W, 3) uint8
    source: Path | None             # the picture it came from


def apply_network(pm: Any, net_dir: str, inputs: list[str], out: str, size: int | None,
                  device: str, ctx: Any = None) -> Applied:
    """Apply the trained network of run ``net_dir`` to ``inputs`` (files and folders),
    writing into the folder ``out``; ``ctx``: a task context (progress, cancel)."""
    from ganstudio.core.devices import pick_device
    from ganstudio.core.feedforward import apply_to_paths, expand_inputs, load_feedforward

    dev = pick_device(device, precision="fp32").device
    _spec, model, _step = load_feedforward(net_dir, pm, dev)

    def progress(i: int, n: int, path: Path) -> None:
        if ctx is not None:
            ctx.progress(i / n, f"{i}/{n} {path.name}")

    written, ms = apply_to_paths(model, inputs, out, size, progress, as_folder=True,
                                 cancelled=ctx.cancelled if ctx is not None else None)
    first = to_uint8_hwc(read_image(written[0])) if written else None
    source = expand_inputs(inputs)[0][0] if written else None
    return Applied(written, ms, first, source)


def export_network_onnx(pm: Any, net_dir: str, path: str | Path) -> Any:
    """Export the trained network of run ``net_dir`` to ONNX at ``path``: pictures in
    [0, 1] (tensor ``input``, dynamic batch / height / width) to pictures in [0, 1]
    (``output``); checked in onnxruntime against torch before the file is placed."""
    from .export import export_onnx
    return export_onnx(pm, net_dir, path)
