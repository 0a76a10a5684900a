"""ONNX export of a trained fast style network, checked in onnxruntime before it is kept.

The file maps pictures to pictures: input tensor ``input`` (batch, 3, height,
width) in [0, 1], output ``output`` of the same shape in [0, 1]; batch, height
and width are dynamic. The export and the check are GAN Studio's own
(:func:`ganstudio.core.onnx_export.export_image_net_onnx`: written under a
temporary name, run in onnxruntime against torch, kept only within tolerance).
The check uses pictures whose sides are not multiples of 4 (``CHECK_SIZE``):
the network pads those, and the trace must keep that padding.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from ganstudio.core.errors import UserError
from ganstudio.core.onnx_export import TOLERANCE, OnnxReport, export_image_net_onnx

#: Side of the first check picture (the second is 12 px taller and 8 px narrower).
CHECK_SIZE = 50


def export_onnx(pm: Any, net_dir: str | Path, path: str | Path) -> OnnxReport:
    """Export the network of the fast style run ``net_dir`` to ``path`` (see the module)."""
    from ganstudio.core.feedforward import load_feedforward

    path = Path(path).expanduser()
    if path.suffix.lower() != ".onnx":
        raise UserError(f"cannot write {path}: give a file name ending in .onnx")
    _spec, model, _step = load_feedforward(net_dir, pm, "cpu")
    return export_module(model.generator_module(), path)


def export_module(net: nn.Module, path: Path, tolerance: float = TOLERANCE) -> OnnxReport:
    """Export a pictures-to-pictures network ([0, 1] in and out) and check it."""
    return export_image_net_onnx(net, 3, path, size=CHECK_SIZE, tolerance=tolerance)
