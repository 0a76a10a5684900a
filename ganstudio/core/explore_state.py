"""What the explorer keeps in a run folder: ``RUN/explore.json``.

::

    {"pins": [{"seed": 42}, {"latent": "explore/projected_photo.npy", "label": "photo"}],
     "kid": {"1200": 0.0123, "2400": 0.0101},      # per checkpoint step
     "kid_features": "random",
     "best_step": 2400,                            # lowest KID among those measured
     "pinned_checkpoints": [1200],                 # kept by checkpoint rotation
     "memorisation": {"samples": 256, "closer": 0, "threshold": 0.31, ...}}

Written atomically (temp file + rename). A missing or unreadable file reads as
empty: the explorer's notes are never a reason to refuse a run. The steps to
protect from checkpoint rotation (best + pinned) are mirrored into
``RUN/checkpoints/keep.json``, which :mod:`ganstudio.core.checkpoints` reads.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from .checkpoints import checkpoint_name, list_checkpoints, write_keep_list
from .errors import CheckpointError, UserError
from .runs import RunFolder
from .safe_files import write_atomic

FILENAME = "explore.json"
#: Folder inside the run for the explorer's files (projected latents and images).
FOLDER = "explore"
_lock = threading.Lock()


def _empty() -> dict:
    return {"pins": [], "kid": {}, "best_step": None, "pinned_checkpoints": []}


def state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / FILENAME


def read_state(run_dir: str | Path) -> dict:
    """The run's explorer state; defaults for anything missing or malformed."""
    state = _empty()
    try:
        raw = json.loads(state_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return state
    if not isinstance(raw, dict):
        return state
    pins = raw.get("pins")
    if isinstance(pins, list):
        state["pins"] = [p for p in pins if isinstance(p, dict)
                         and (isinstance(p.get("seed"), int) or isinstance(p.get("latent"), str))]
    kid = raw.get("kid")
    if isinstance(kid, dict):
        state["kid"] = {str(k): float(v) for k, v in kid.items()
                        if str(k).isdigit() and isinstance(v, (int, float))}
    if isinstance(raw.get("best_step"), int):
        state["best_step"] = raw["best_step"]
    pc = raw.get("pinned_checkpoints")
    if isinstance(pc, list):
        state["pinned_checkpoints"] = sorted({int(s) for s in pc if isinstance(s, int)})
    for key in ("kid_features", "memorisation"):
        if key in raw:
            state[key] = raw[key]
    return state


def write_state(run_dir: str | Path, state: dict) -> Path:
    """Write ``state`` atomically and mirror the protected checkpoint steps."""
    path = state_path(run_dir)
    try:  # a fresh temporary name, no link followed (see ganstudio.core.safe_files)
        write_atomic(path, json.dumps(state, indent=1, sort_keys=True), within=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    protected = set(state.get("pinned_checkpoints") or [])
    if isinstance(state.get("best_step"), int):
        protected.add(state["best_step"])
    try:
        write_keep_list(RunFolder(run_dir).checkpoints_dir, sorted(protected))
    except OSError:
        pass  # rotation then keeps only the last N: no loss of what is already on disk
    return path


def update_state(run_dir: str | Path, **changes: Any) -> dict:
    """Read, apply ``changes``, write; returns the new state."""
    with _lock:
        state = read_state(run_dir)
        state.update(changes)
        write_state(run_dir, state)
        return state


# -- pins -----------------------------------------------------------------------------------------
def pinned_seeds(run_dir: str | Path) -> list[int]:
    return [p["seed"] for p in read_state(run_dir)["pins"] if "seed" in p]


def set_seed_pinned(run_dir: str | Path, seed: int, pinned: bool = True) -> list[dict]:
    """Pin or unpin ``seed``; returns the pins."""
    with _lock:
        state = read_state(run_dir)
        pins = [p for p in state["pins"] if p.get("seed") != int(seed)]
        if pinned:
            pins.append({"seed": int(seed)})
        state["pins"] = pins
        write_state(run_dir, state)
        return pins


def pin_latent(run_dir: str | Path, relative_path: str, label: str) -> list[dict]:
    """Pin a latent file (a projection) stored inside the run folder."""
    with _lock:
        state = read_state(run_dir)
        pins = [p for p in state["pins"] if p.get("latent") != relative_path]
        pins.append({"latent": relative_path, "label": label})
        state["pins"] = pins
        write_state(run_dir, state)
        return pins


def unpin(run_dir: str | Path, pin: dict) -> list[dict]:
    with _lock:
        state = read_state(run_dir)
        state["pins"] = [p for p in state["pins"] if p != pin]
        write_state(run_dir, state)
        return state["pins"]


def set_checkpoint_pinned(run_dir: str | Path, step: int, pinned: bool = True) -> list[int]:
    """Keep (or stop keeping) the checkpoint of ``step`` through rotation."""
    with _lock:
        state = read_state(run_dir)
        steps = set(state["pinned_checkpoints"])
        (steps.add if pinned else steps.discard)(int(step))
        state["pinned_checkpoints"] = sorted(steps)
        write_state(run_dir, state)
        return state["pinned_checkpoints"]


# -- which checkpoint -----------------------------------------------------------------------------
def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """Steps of the run's checkpoints on disk, oldest first."""
    return [int(p.name[5:-3]) for p in list_checkpoints(RunFolder(run_dir).checkpoints_dir)]


def resolve_checkpoint(run_dir: str | Path, which: str | int | None) -> Path | None:
    """The checkpoint file for ``"last"`` (None: the newest that loads), ``"best"``
    (lowest measured KID) or a step number. CheckpointError saying what is missing."""
    run = RunFolder(run_dir)
    if which is None or which == "last":
        if not list_checkpoints(run.checkpoints_dir):
            raise CheckpointError(f"run {run.path} has no checkpoint yet")
        return None
    if which == "best":
        best = read_state(run_dir).get("best_step")
        if best is None:
            raise CheckpointError(f"no best checkpoint is known for {run.path}: measure KID "
                                  "per checkpoint first (best)")
        step = int(best)
    else:
        try:
            step = int(which)
        except (TypeError, ValueError):
            raise UserError(f"checkpoint '{which}' is not best, last or a step number") from None
    path = run.checkpoints_dir / checkpoint_name(step)
    if not path.is_file():
        have = ", ".join(str(s) for s in checkpoint_steps(run_dir)) or "none"
        raise CheckpointError(f"run {run.path} has no checkpoint of step {step} "
                              f"(kept steps: {have})")
    return path
