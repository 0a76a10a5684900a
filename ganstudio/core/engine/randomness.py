"""Every random stream training depends on: saved in checkpoints, and kept out of
reach of sampling and the monitors.

Training draws from torch's global generators (CPU, and the device's own on
CUDA), and outside code a plugin wraps may draw from Python's ``random`` or
NumPy's global generator. :func:`capture` / :func:`restore` cover all of them
(checkpoints store the result), and :func:`isolated` runs a block - a sample
grid, the balance alarm, KID/FID - so that whatever it draws leaves the training
streams exactly where they were: a generator that adds noise at sampling time
cannot shift training, however often the schedule samples.
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator

import numpy as np
import torch


def capture(device: torch.device | None) -> dict[str, Any]:
    """The state of every generator, as checkpoint-safe values (tensors, lists, ints)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    version, internal, gauss = random.getstate()
    state["python"] = {"version": int(version), "state": list(internal),
                       "gauss": gauss if gauss is None else float(gauss)}
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}
    return state


def restore(state: dict[str, Any], device: torch.device | None) -> None:
    """Set the generators from :func:`capture`'s result (missing parts are left alone:
    checkpoints written before they were saved)."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu(), device)
    py = state.get("python")
    if py:
        random.setstate((int(py["version"]), tuple(int(x) for x in py["state"]), py["gauss"]))
    npy = state.get("numpy")
    if npy:
        keys = npy["keys"]
        keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
        np.random.set_state((npy["name"], keys.astype(np.uint32), int(npy["pos"]),
                             int(npy["has_gauss"]), float(npy["cached"])))


@contextlib.contextmanager
def isolated(device: torch.device | None) -> Iterator[None]:
    """Run a block whose random draws must not move the training streams."""
    saved = capture(device)
    try:
        yield
    finally:
        restore(saved, device)
