"""Checkpoints: atomic, checksummed, loaded without executing code.

File layout: a 64-byte header ``GANSTUDIO-CKPT 1 <sha256 hex>\\n`` padded with
spaces, then the ``torch.save`` payload. Writing goes to a temporary file in
the same folder, is fsync'ed, then renamed over the final name, so a crash
(``kill -9``, power loss) leaves either the old set of checkpoints or the new
one, never a half file under a checkpoint's name. Loading checks the header
and the checksum first and then uses ``torch.load(weights_only=True)``, which
refuses pickled code: a crafted file is rejected, not run.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import CheckpointError

MAGIC = b"GANSTUDIO-CKPT 1 "
HEADER_SIZE = 96
NAME_RE = re.compile(r"^ckpt_(\d{8,})\.pt$")


def checkpoint_name(step: int) -> str:
    return f"ckpt_{step:08d}.pt"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: dict[str, Any], folder: str | os.PathLike, step: int,
                    *, keep_last: int = 3) -> Path:
    """Write ``state`` as ``folder/ckpt_<step>.pt`` atomically; prune to ``keep_last``.

    Raises OSError (e.g. disk full) with the temporary file removed and older
    checkpoints untouched.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    header = (MAGIC + digest + b"\n").ljust(HEADER_SIZE, b" ")
    final = folder / checkpoint_name(step)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(folder)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if keep_last > 0:
        for old in list_checkpoints(folder)[:-keep_last]:
            try:
                old.unlink()
            except OSError:
                pass
    return final


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoint files in ``folder``, oldest step first. Temp files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = NAME_RE.match(p.name)
        if m and p.is_file() and not p.is_symlink():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Verify and load one checkpoint, or raise CheckpointError saying why."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if not raw.startswith(MAGIC) or len(raw) < HEADER_SIZE:
        raise CheckpointError(f"{path} is not a GAN Studio checkpoint (missing header); refused")
    header = raw[:HEADER_SIZE].strip()
    expected = header[len(MAGIC):].strip()
    payload = raw[HEADER_SIZE:]
    if hashlib.sha256(payload).hexdigest().encode() != expected:
        raise CheckpointError(f"checkpoint {path} is damaged or truncated (checksum mismatch)")
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError for anything that is not plain data
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(f"checkpoint {path} was refused: it holds more than plain "
                              f"tensors and values ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a state dictionary")
    return state


def load_latest(folder: str | os.PathLike, map_location: str | torch.device = "cpu",
                on_skip: Callable[[Path, str], None] | None = None) -> tuple[Path, dict] | None:
    """Newest checkpoint that verifies; damaged ones are reported via ``on_skip`` and passed over."""
    for path in reversed(list_checkpoints(folder)):
        try:
            return path, load_checkpoint(path, map_location)
        except CheckpointError as e:
            if on_skip:
                on_skip(path, str(e))
    return None


def load_weights_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a weights file (GAN Studio checkpoint, plain ``torch.save`` state_dict or
    ``.safetensors``) without executing code. Raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError("reading .safetensors needs the 'safetensors' package "
                                  "(pip install safetensors)") from None
        try:
            return load_file(str(path), device=str(map_location))
        except Exception as e:
            raise CheckpointError(f"cannot read {path}: {e}") from None
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head == MAGIC:
        return load_checkpoint(path, map_location)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(f"{path} was refused: not a plain weights file ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dictionary")
    return state
