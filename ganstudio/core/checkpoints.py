"""Checkpoints: atomic, checksummed, loaded without executing code.

File layout: a 96-byte header ``GANSTUDIO-CKPT 1 <sha256 hex>\\n`` padded with
spaces, then the ``torch.save`` payload. Writing goes to a temporary file in
the same folder, is fsync'ed, then renamed over the final name, so a crash
(``kill -9``, power loss) leaves either the old set of checkpoints or the new
one, never a half file under a checkpoint's name. Loading checks the header
and the checksum first and then uses ``torch.load(weights_only=True)``, which
refuses pickled code: a crafted file is rejected, not run.

A process killed while writing leaves a hidden ``.ckpt_<step>.pt.<pid>.tmp``
file; it is never taken for a checkpoint and the next writer removes it.
"""
from __future__ import annotations

import errno
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
TEMP_RE = re.compile(r"^\.ckpt_\d{8,}\.pt\.(\d+)\.tmp$")
#: Bytes per write call: a write cut short by a kill or a full disk stops at a chunk.
WRITE_CHUNK = 1 << 20


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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # someone else's live process, or cannot tell: leave its file alone
    return True


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by writers that died mid-write (their pid is gone)."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = TEMP_RE.match(p.name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def _write_all(f, header: bytes, payload: bytes) -> None:
    """Header, then the payload in chunks. (Tests replace this to pause mid-write.)"""
    f.write(header)
    view = memoryview(payload)
    for start in range(0, len(view), WRITE_CHUNK):
        f.write(view[start:start + WRITE_CHUNK])


def is_disk_full(error: BaseException) -> bool:
    """True for 'no space left', 'quota exceeded' and 'file too large' errors."""
    codes = {errno.ENOSPC, errno.EFBIG}
    if hasattr(errno, "EDQUOT"):
        codes.add(errno.EDQUOT)
    return isinstance(error, OSError) and error.errno in codes


def save_checkpoint(state: dict[str, Any], folder: str | os.PathLike, step: int,
                    *, keep_last: int = 3) -> Path:
    """Write ``state`` as ``folder/ckpt_<step>.pt`` atomically; prune to ``keep_last``.

    Raises OSError (e.g. disk full) with the temporary file removed and older
    checkpoints untouched. Pruning happens only after the new file is in place.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(folder)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    header = (MAGIC + digest + b"\n").ljust(HEADER_SIZE, b" ")
    final = folder / checkpoint_name(step)
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            _write_all(f, header, payload)
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
        # Keep the newest ``keep_last`` files that verify: pruning must never remove the
        # last good checkpoint because newer ones were damaged after writing.
        for old in _prunable(folder, keep_last, known_good=final):
            try:
                old.unlink()
            except OSError:
                pass
    return final


#: Steps whose checkpoints rotation keeps besides the last N (the best-KID one, pinned ones).
KEEP_FILE = "keep.json"


def write_keep_list(folder: str | os.PathLike, steps: list[int]) -> Path:
    """Record the steps whose checkpoints pruning must keep (atomic write)."""
    import json
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / KEEP_FILE
    tmp = folder / f".{KEEP_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"steps": sorted({int(s) for s in steps})}), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_keep_list(folder: str | os.PathLike) -> set[int]:
    """Steps listed in ``folder/keep.json``; empty when the file is missing or malformed."""
    import json
    try:
        steps = json.loads((Path(folder) / KEEP_FILE).read_text(encoding="utf-8"))["steps"]
        return {int(s) for s in steps if isinstance(s, int)}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _prunable(folder: Path, keep_last: int, known_good: Path) -> list[Path]:
    """Checkpoints beyond the newest ``keep_last`` ones that verify (``known_good`` was
    just written and is not read again); those listed in keep.json are never pruned."""
    newest_first = list(reversed(list_checkpoints(folder)))
    protected = {folder / checkpoint_name(s) for s in read_keep_list(folder)}
    kept, out = 0, []
    for p in newest_first:
        if p in protected:
            continue
        if kept >= keep_last:
            out.append(p)
        elif p == known_good or verify_checkpoint(p) is None:
            kept += 1
    return out


def verify_checkpoint(path: str | os.PathLike) -> str | None:
    """None when ``path`` has a GAN Studio header and a matching checksum; else the reason.

    Reads the file but unpickles nothing.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        return f"cannot read checkpoint {path}: {e.strerror or e}"
    return _check_raw(path, raw)


def _check_raw(path: Path, raw: bytes) -> str | None:
    if not raw.startswith(MAGIC) or len(raw) < HEADER_SIZE:
        return f"{path} is not a GAN Studio checkpoint (missing header); refused"
    header = raw[:HEADER_SIZE].strip()
    expected = header[len(MAGIC):].strip()
    if hashlib.sha256(memoryview(raw)[HEADER_SIZE:]).hexdigest().encode() != expected:
        return f"checkpoint {path} is damaged or truncated (checksum mismatch)"
    return None


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
    problem = _check_raw(path, raw)
    if problem:
        raise CheckpointError(problem)
    payload = raw[HEADER_SIZE:]
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # UnpicklingError for anything that is not plain data
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise CheckpointError(f"checkpoint {path} was refused: it holds more than plain "
                              f"tensors and values ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a state dictionary")
    return state


def set_aside(path: str | os.PathLike, why: str = "damaged") -> Path | None:
    """Rename a checkpoint that failed to load to ``<name>.<why>`` so that it is never
    tried again and never counted as one of the kept checkpoints. Returns the new path."""
    path = Path(path)
    target = path.with_name(f"{path.name}.{why}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{why}{n}")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


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
