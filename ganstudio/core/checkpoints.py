"""Checkpoints: atomic, checksummed, loaded without executing code.

File layout: a 96-byte header ``GANSTUDIO-CKPT 1 <sha256 hex>\\n`` padded with
spaces, then the ``torch.save`` payload. Writing goes to a temporary file in
the same folder, is fsync'ed, then renamed over the final name, so a crash
(``kill -9``, power loss) leaves either the old set of checkpoints or the new
one, never a half file under a checkpoint's name. Loading checks the header
and the checksum first and then uses ``torch.load(weights_only=True)``, which
refuses pickled code: a crafted file is rejected, not run.

A process killed while writing leaves a hidden ``.ckpt_<step>.pt.<pid>.<random>.tmp``
file (see :mod:`ganstudio.core.safe_files`: created exclusively, never through a
link); it is never taken for a checkpoint and the next writer removes it.

A checkpoint's contents are checked too (:func:`check_state`): a file with a
valid checksum may still have been crafted, so the step, the model id and the
shape of the state are validated before a run resumes from it, prunes older
checkpoints or drops history after it.
"""
from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .errors import CheckpointError
from .safe_files import atomic_file, pid_alive, remove_stale_temporaries, write_atomic

MAGIC = b"GANSTUDIO-CKPT 1 "
HEADER_SIZE = 96
NAME_RE = re.compile(r"^ckpt_(\d{8,})\.pt$")
#: Temporary names of earlier versions (``.ckpt_<step>.pt.<pid>.tmp``), still cleaned up.
TEMP_RE = re.compile(r"^\.ckpt_\d{8,}\.pt\.(\d+)\.tmp$")
#: Bytes per write call: a write cut short by a kill or a full disk stops at a chunk.
WRITE_CHUNK = 1 << 20


def checkpoint_name(step: int) -> str:
    return f"ckpt_{step:08d}.pt"


_pid_alive = pid_alive  # kept for callers of earlier versions


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by writers that died mid-write (their pid is gone)."""
    folder = Path(folder)
    removed = remove_stale_temporaries(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = TEMP_RE.match(entry.name)
        if m and not pid_alive(int(m.group(1))):
            try:
                os.unlink(entry.path)  # removes a planted link itself, never its target
                removed.append(Path(entry.path))
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
                    *, keep_last: int = 3, within: str | os.PathLike | None = None) -> Path:
    """Write ``state`` as ``folder/ckpt_<step>.pt`` atomically; prune to ``keep_last``.

    ``within`` is the run folder: the folders below it are entered without following
    links (see :func:`ganstudio.core.safe_files.atomic_file`). Raises OSError (e.g. disk
    full) naming the checkpoint, with the temporary file removed and older checkpoints
    untouched; UnsafeFileError when the checkpoint's name is a link. Pruning happens
    only after the new file is in place.
    """
    folder = Path(folder)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    header = (MAGIC + digest + b"\n").ljust(HEADER_SIZE, b" ")
    final = folder / checkpoint_name(step)
    with atomic_file(final, "wb", within=within if within is not None else folder.parent,
                     fsync=True) as f:
        remove_stale_temp_files(folder)
        _write_all(f, header, payload)
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
    path = folder / KEEP_FILE
    # a fresh temporary name, no link followed (the run folder may come from elsewhere)
    write_atomic(path, json.dumps({"steps": sorted({int(s) for s in steps})}),
                 within=folder.parent, fsync=False)
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
        state = _torch_load(io.BytesIO(payload), map_location)
    except Exception as e:  # UnpicklingError for anything that is not plain data
        raise CheckpointError(f"checkpoint {path} was refused: it holds more than plain "
                              f"tensors and values ({_load_failure(e)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} was refused: it does not hold a state "
                              "dictionary")
    return state


def _torch_load(source: Any, map_location: Any) -> Any:
    """``torch.load`` with ``weights_only=True`` (no code runs) and its warnings muted
    (they speak to developers, e.g. of pickle protocols)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(source, map_location=map_location, weights_only=True)


#: Sentences of torch's refusal that are advice, not a reason. One of them says to load
#: with ``weights_only=False`` or to allow-list the named function, either of which would
#: run whatever code the file holds: never shown.
_ADVICE = ("weights only load failed", "weights_only", "file an issue", "documentation",
           "trust", "will likely succeed", "please use", "safe_globals", "allowlist",
           "two options", "can still be loaded", "alternatively", "pytorch 2.6")


def _load_failure(error: BaseException) -> str:
    """Why ``torch.load`` refused a file, without torch's advice."""
    from .safe_files import printable
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    m = re.search(r"WeightsUnpickler error:(.*)", text, re.S)
    body = m.group(1) if m else text
    kept = []
    for sentence in re.split(r"(?<=\.)\s+|\n", body):
        sentence = sentence.strip().lstrip("(12) ").strip()
        if sentence and not any(a in sentence.lower() for a in _ADVICE):
            kept.append(sentence)
    reason = printable(" ".join(kept))[:300]
    return reason or f"{error.__class__.__name__}: not plain data"


def check_state(state: Any, path: str | os.PathLike, *, model_id: str | None = None,
                max_step: int | None = None) -> str | None:
    """None when a loaded checkpoint's contents are well-formed; else why not.

    A checksum proves only that the file is whole; a crafted file can carry any values.
    Checked here: a dictionary; ``step`` a non-negative integer, equal to the step in
    the file's name and not beyond ``max_step`` (how far the run's own records go);
    ``model_id`` a string equal to ``model_id``; ``model`` a dictionary; ``config``,
    ``data`` and ``rng`` dictionaries when present; ``images_seen`` a non-negative
    integer and ``elapsed`` a finite non-negative number when present; ``fixed_noise``
    a tensor or None."""
    path = Path(path)
    where = f"checkpoint {path} was refused"
    if not isinstance(state, dict):
        return f"{where}: it does not hold a state dictionary"
    step = state.get("step")
    if not _is_int(step) or step < 0:
        return f"{where}: its step ({_short(step)}) is not a non-negative whole number"
    m = NAME_RE.match(path.name)
    if m and int(m.group(1)) != step:
        return f"{where}: its step ({step}) differs from the step in its name"
    if max_step is not None and step > max_step:
        return (f"{where}: its step ({step}) lies beyond this run's records (step "
                f"{max_step} at most)")
    mid = state.get("model_id")
    if not isinstance(mid, str):
        return f"{where}: its model id ({_short(mid)}) is not a name"
    if model_id is not None and mid != model_id:
        return f"{where}: it belongs to model '{_short(mid)}', not '{model_id}'"
    if not isinstance(state.get("model"), dict):
        return f"{where}: its model state is missing or not a dictionary"
    for key in ("config", "data", "rng"):
        if state.get(key) is not None and not isinstance(state[key], dict):
            return f"{where}: its '{key}' is not a dictionary"
    seen = state.get("images_seen", 0)
    if not _is_int(seen) or seen < 0:
        return f"{where}: its 'images_seen' ({_short(seen)}) is not a non-negative whole number"
    elapsed = state.get("elapsed", 0.0)
    if not isinstance(elapsed, (int, float)) or isinstance(elapsed, bool) \
            or not math.isfinite(elapsed) or elapsed < 0:
        return f"{where}: its 'elapsed' ({_short(elapsed)}) is not a time"
    noise = state.get("fixed_noise")
    if noise is not None and not isinstance(noise, torch.Tensor):
        return f"{where}: its 'fixed_noise' is not a tensor"
    for name, value in (state.get("rng") or {}).items():
        if not isinstance(value, torch.Tensor):
            return f"{where}: its random state '{_short(name)}' is not a tensor"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any) -> str:
    from .safe_files import printable
    text = printable(repr(value))
    return text if len(text) <= 40 else text[:37] + "..."


def set_aside(path: str | os.PathLike, why: str = "damaged") -> Path | None:
    """Rename a checkpoint that failed to load to ``<name>.<why>`` so that it is never
    tried again and never counted as one of the kept checkpoints. Returns the new path."""
    path = Path(path)
    target = path.with_name(f"{path.name}.{why}")
    n = 1
    while os.path.lexists(target):
        n += 1
        target = path.with_name(f"{path.name}.{why}{n}")
    try:
        os.replace(path, target)  # renames the entry itself; a link would not be followed
    except OSError:
        return None
    return target


def candidates(folder: str | os.PathLike, map_location: str | torch.device = "cpu", *,
               model_id: str | None = None, max_step: int | None = None
               ) -> Iterator[tuple[Path, dict | None, str]]:
    """Every checkpoint in ``folder``, newest first, as (path, state, "") when it verifies,
    loads and passes :func:`check_state`, else (path, None, why). Nothing is renamed or
    removed: the caller decides (see :func:`set_aside`)."""
    for path in reversed(list_checkpoints(folder)):
        try:
            state = load_checkpoint(path, map_location)
        except CheckpointError as e:
            yield path, None, str(e)
            continue
        problem = check_state(state, path, model_id=model_id, max_step=max_step)
        yield (path, None, problem) if problem else (path, state, "")


def load_latest(folder: str | os.PathLike, map_location: str | torch.device = "cpu",
                on_skip: Callable[[Path, str], None] | None = None, *,
                model_id: str | None = None, max_step: int | None = None
                ) -> tuple[Path, dict] | None:
    """Newest checkpoint that verifies and whose contents pass :func:`check_state`;
    the others are reported via ``on_skip`` and passed over."""
    for path, state, problem in candidates(folder, map_location, model_id=model_id,
                                           max_step=max_step):
        if state is not None:
            return path, state
        if on_skip:
            on_skip(path, problem)
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
        state = _torch_load(path, map_location)
    except Exception as e:
        raise CheckpointError(f"{path} was refused: not a plain weights file "
                              f"({_load_failure(e)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dictionary")
    return state
