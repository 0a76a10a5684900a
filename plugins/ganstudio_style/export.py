"""ONNX export of a trained fast style network, checked in onnxruntime before it is kept.

The file maps pictures to pictures: input tensor ``input`` (batch, 3, height,
width) in [0, 1], output ``output`` of the same shape in [0, 1]; batch, height
and width are dynamic (the names and range image tools such as chaiNNer
expect). It is written under a temporary name, run in onnxruntime on several
batch sizes and picture sizes (including sizes that are not multiples of 4,
where the network pads), compared with torch, and renamed only when the
largest difference is within ``TOLERANCE``; otherwise it is removed and the
export fails with the difference.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ganstudio.core.errors import UserError

OPSET = 17
#: Largest allowed difference on a 0..1 picture (a quarter of one 8-bit level).
TOLERANCE = 1e-3
CHECK_SHAPES = [(1, 3, 64, 64), (2, 3, 50, 30), (1, 3, 33, 47)]


@dataclass
class OnnxReport:
    path: Path
    max_abs_diff: float
    checked_shapes: list[tuple[int, ...]] = field(default_factory=list)


class _UnitRange(nn.Module):
    """pictures in [0, 1] -> the network's pictures, clamped to [0, 1]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the ONNX name
        return self.net(input).clamp(0, 1)


def export_onnx(pm: Any, net_dir: str | Path, path: str | Path,
                tolerance: float = TOLERANCE) -> OnnxReport:
    """Export the network of the fast style run ``net_dir`` to ``path`` (see the module)."""
    from ganstudio.core.feedforward import load_feedforward

    path = Path(path).expanduser()
    if path.suffix.lower() != ".onnx":
        raise UserError(f"cannot write {path}: give a file name ending in .onnx")
    _spec, model, _step = load_feedforward(net_dir, pm, "cpu")
    return export_module(model.generator_module(), path, tolerance)


def export_module(net: nn.Module, path: Path, tolerance: float = TOLERANCE) -> OnnxReport:
    """Export a pictures-to-pictures network ([0, 1] in and out) and check it."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("checking an ONNX export needs the 'onnxruntime' package") from None
    module = _UnitRange(net).to("cpu").eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dynamic = {0: "batch", 2: "height", 3: "width"}
    g = torch.Generator().manual_seed(0)
    try:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's notices
                torch.onnx.export(module, (torch.rand(1, 3, 64, 64, generator=g),), str(tmp),
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": dynamic, "output": dynamic},
                                  opset_version=OPSET, dynamo=False, do_constant_folding=True)
        except Exception as e:  # noqa: BLE001 - the exporter raises many kinds
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(f"the network cannot be exported to ONNX: {first}") from None
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        worst = 0.0
        for shape in CHECK_SHAPES:
            x = torch.rand(*shape, generator=g)
            got = session.run(None, {"input": x.numpy()})[0]
            with torch.no_grad():
                want = module(x).numpy()
            if got.shape != want.shape:
                raise UserError(f"the ONNX export gives shape {got.shape} where torch gives "
                                f"{want.shape}; {path.name} was not written")
            worst = max(worst, float(np.abs(got - want).max()))
        if not np.isfinite(worst) or worst > tolerance:
            raise UserError(f"the ONNX export differs from torch by {worst:.2g} (more than "
                            f"{tolerance:g}); {path.name} was not written")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return OnnxReport(path, worst, [tuple(s) for s in CHECK_SHAPES])
