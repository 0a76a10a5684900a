"""ONNX export, checked in onnxruntime against torch before the file is called written.

Two shapes of network:

* a **generator**: input ``latent`` (batch, dim) -> output ``image``
  (batch, C, H, W) in [0, 1]; the batch size is dynamic;
* an **image-to-image** network (e.g. a fast style network): input ``input``
  (batch, C, H, W) in [0, 1] -> output ``output`` in [0, 1]; batch, height and
  width are dynamic (the names and range image-processing node editors such as
  chaiNNer expect).

The file is written under a temporary name, run in onnxruntime on fresh
inputs (two batch sizes; for image networks also other picture sizes, odd ones
among them), and
compared with torch; only when the largest difference is within tolerance is it
renamed to its final name. A mismatch removes the temporary file and raises.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .errors import UserError

OPSET = 17
#: Largest allowed difference between onnxruntime and torch on a 0..1 image
#: (a quarter of one 8-bit grey level).
TOLERANCE = 1e-3


@dataclass
class OnnxReport:
    path: Path
    max_abs_diff: float
    checked_shapes: list[tuple[int, ...]]


class UnitRangeGenerator(nn.Module):
    """latents -> images in [0, 1] for a generator whose images are in [-1, 1]."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return ((self.net(latent) + 1) * 0.5).clamp(0, 1)


class UnitRangeImageNet(nn.Module):
    """images in [0, 1] -> images in [0, 1] (the output clamped)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the ONNX input name
        return self.net(input).clamp(0, 1)


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError("checking an ONNX export needs the 'onnxruntime' package "
                        "(pip install onnxruntime)") from None
    return onnxruntime


def _export(module: nn.Module, example: torch.Tensor, tmp: Path, in_name: str, out_name: str,
            dynamic: dict[int, str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, (example,), str(tmp), input_names=[in_name],
                          output_names=[out_name], opset_version=OPSET, dynamo=False,
                          dynamic_axes={in_name: dynamic, out_name: dynamic},
                          do_constant_folding=True)


def _verify_and_place(module: nn.Module, tmp: Path, path: Path, in_name: str,
                      inputs: list[torch.Tensor], tolerance: float) -> OnnxReport:
    ort = _runtime()
    try:
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        worst = 0.0
        shapes = []
        for x in inputs:
            got = session.run(None, {in_name: x.numpy()})[0]
            with torch.no_grad():
                want = module(x).float().numpy()
            if got.shape != want.shape:
                raise UserError(f"ONNX export of {path.name} gives shape {got.shape} where "
                                f"torch gives {want.shape}; not written")
            worst = max(worst, float(np.abs(got - want).max()))
            shapes.append(tuple(x.shape))
        if not np.isfinite(worst) or worst > tolerance:
            raise UserError(f"ONNX export of {path.name} differs from torch by {worst:.2g} "
                            f"(more than {tolerance:g}); not written")
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass
    return OnnxReport(path, worst, shapes)


def _temp_for(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def export_generator_onnx(net: nn.Module, dim: int, path: str | Path, *,
                          device: str | torch.device = "cpu",
                          tolerance: float = TOLERANCE) -> OnnxReport:
    """Export ``net`` (latents (N, dim) -> images in [-1, 1]) as an ONNX generator with
    a dynamic batch and images in [0, 1]; checked in onnxruntime before it is placed."""
    path = Path(path)
    module = UnitRangeGenerator(net).to("cpu").eval()
    tmp = _temp_for(path)
    g = torch.Generator().manual_seed(0)
    try:
        _export(module, torch.randn(2, dim, generator=g), tmp, "latent", "image", {0: "batch"})
    except Exception as e:  # the exporter raises many kinds for unsupported layers
        _cleanup(tmp)
        raise UserError(f"the generator cannot be exported to ONNX: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    inputs = [torch.randn(1, dim, generator=g), torch.randn(5, dim, generator=g)]
    return _verify_and_place(module, tmp, path, "latent", inputs, tolerance)


def export_image_net_onnx(net: nn.Module, channels: int, path: str | Path, *, size: int = 64,
                          tolerance: float = TOLERANCE) -> OnnxReport:
    """Export ``net`` (images in [0, 1] -> images in [0, 1]) with dynamic batch, height
    and width, tensors named ``input`` / ``output``; checked in onnxruntime."""
    path = Path(path)
    module = UnitRangeImageNet(net).to("cpu").eval()
    tmp = _temp_for(path)
    g = torch.Generator().manual_seed(0)
    try:
        # Traced at an odd size: a network that pads its input to a multiple of its stride
        # (``if h % 4: pad``) takes that branch while tracing, so the padding is recorded
        # with sizes computed from the input's shape; traced at a multiple, the branch
        # would vanish and other sizes would come out wrong (the check below catches it).
        _export(module, torch.rand(1, channels, size + 1, size + 3, generator=g), tmp,
                "input", "output", {0: "batch", 2: "height", 3: "width"})
    except Exception as e:
        _cleanup(tmp)
        raise UserError(f"the network cannot be exported to ONNX: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    inputs = [torch.rand(1, channels, size, size, generator=g),
              torch.rand(2, channels, size + 12, size - 8, generator=g),
              torch.rand(1, channels, size + 5, size - 3, generator=g)]
    return _verify_and_place(module, tmp, path, "input", inputs, tolerance)


def _cleanup(tmp: Path) -> None:
    try:
        tmp.unlink()
    except OSError:
        pass
