"""Export a run's trained network from a chosen checkpoint: ONNX, safetensors or pt.

The network is the model's declared ``generator_module()`` (the EMA copy where
the model keeps one). ONNX needs the model to declare the ``onnx`` capability:
with a latent space it is exported as a generator (latents -> images), without
one as an image-to-image network (images in [0, 1] -> images in [0, 1]).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .model import FEEDFORWARD, GAN

FORMATS = ("onnx", "safetensors", "pt")
_SUFFIXES = {"onnx": (".onnx",), "safetensors": (".safetensors",), "pt": (".pt", ".pth")}


@dataclass
class ExportResult:
    path: Path
    format: str
    step: int | None
    model_id: str
    kind: str                     # "generator", "image2image" or "weights"
    max_abs_diff: float | None = None   # ONNX: onnxruntime against torch


def check_writable(path: str | Path) -> Path:
    """UserError when ``path`` cannot be written (missing parent that cannot be made,
    a folder, no permission) - before any work is done."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"cannot write {path}: it is a folder")
    blocker = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise UserError(f"cannot write {path}: {blocker} is a file, not a folder "
                        "(Not a directory)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"cannot write {path}: permission denied")
    # Some folders let nothing new in although they are "writable" (/proc, a read-only
    # mount): find out by creating (and removing) a file there, before any work is done.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: no file can be created in {path.parent} "
                        f"({e.strerror or e})") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass
    return path


def format_for(path: str | Path, fmt: str | None) -> str:
    """The format named, or the one the file name's suffix says."""
    suffix = Path(path).suffix.lower()
    if fmt is None:
        for name, suffixes in _SUFFIXES.items():
            if suffix in suffixes:
                return name
        raise UserError(f"{Path(path).name}: say --format onnx, safetensors or pt "
                        "(or name the file .onnx, .safetensors or .pt)")
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}' (use onnx, safetensors or pt)")
    return fmt


def export_run(run_dir: str | Path, plugin_manager: Any, path: str | Path, fmt: str | None = None,
               checkpoint: str | int | None = "last", device: str = "cpu") -> ExportResult:
    """Export the run's network from ``checkpoint`` (``last``, ``best`` or a step) to ``path``."""
    from .explore_state import resolve_checkpoint
    from .inference import load_trained
    fmt = format_for(path, fmt)
    path = check_writable(path)
    ckpt = resolve_checkpoint(run_dir, checkpoint)
    spec, model, state = load_trained(run_dir, plugin_manager, device="cpu", checkpoint=ckpt)
    if spec.kind not in (GAN, FEEDFORWARD):
        raise UserError(f"run {run_dir} is a '{spec.id}' job; it has no trained network to export")
    step = state.get("step")
    net = model.generator_module()
    net.eval()
    if fmt == "onnx":
        from .latents import latent_dim
        from .onnx_export import export_generator_onnx, export_image_net_onnx
        if not spec.has("onnx"):
            raise UserError(f"model '{spec.id}' does not declare ONNX export (capability "
                            "'onnx'); export safetensors or pt instead")
        if spec.latent is not None:
            report = export_generator_onnx(net, latent_dim(spec, model), path)
            kind = "generator"
        else:
            channels = int(model.image_shape[0]) if getattr(model, "image_shape", None) else 3
            report = export_image_net_onnx(net, channels, path)
            kind = "image2image"
        return ExportResult(report.path, fmt, step, spec.id, kind, report.max_abs_diff)
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if fmt == "safetensors":
            from safetensors.torch import save_file
            meta = {"model_id": spec.id, "plugin": spec.plugin, "step": str(step),
                    "format": "generator state_dict"}
            save_file(weights, str(tmp), metadata=meta)
            os.chmod(tmp, 0o644)
        else:
            torch.save(weights, tmp)
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001 - OSError, or the safetensors writer's own error
        try:
            tmp.unlink()
        except OSError:
            pass
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).split(" at path")[0]
        raise UserError(f"cannot write {path}: {why}") from None
    return ExportResult(path, fmt, step, spec.id, "weights")
