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


def capture(device: torch.device | None) -> dict[str, torch.Tensor]:
    """The state of every generator, as tensors (what checkpoints accept):
    ``torch``, ``cuda`` (on a CUDA device), ``python`` and ``numpy`` (Mersenne
    Twister words plus position and cached Gaussian flags, int64) and their cached
    Gaussians (``python_gauss``, ``numpy_gauss``, float64)."""
    state: dict[str, torch.Tensor] = {"torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    version, internal, gauss = random.getstate()
    state["python"] = torch.tensor([int(version), *internal, int(gauss is not None)],
                                   dtype=torch.int64)
    state["python_gauss"] = torch.tensor([gauss or 0.0], dtype=torch.float64)
    _name, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = torch.tensor([int(pos), int(has_gauss), *np.asarray(keys).tolist()],
                                  dtype=torch.int64)
    state["numpy_gauss"] = torch.tensor([float(cached)], dtype=torch.float64)
    return state


def restore(state: dict[str, Any], device: torch.device | None) -> None:
    """Set the generators from :func:`capture`'s result. Parts a checkpoint lacks
    (written before they were saved) are left alone; malformed ones raise ValueError."""
    if "torch" in state:
        torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu(), device)
    if "python" in state:
        words = [int(x) for x in state["python"].tolist()]
        if len(words) != 627:
            raise ValueError(f"Python's random state has {len(words)} words, not 627")
        gauss = float(state["python_gauss"][0]) if words[-1] else None
        random.setstate((words[0], tuple(words[1:-1]), gauss))
    if "numpy" in state:
        words = [int(x) for x in state["numpy"].tolist()]
        if len(words) != 626:
            raise ValueError(f"NumPy's random state has {len(words)} words, not 626")
        np.random.set_state(("MT19937", np.asarray(words[2:], dtype=np.uint32), words[0],
                             words[1], float(state["numpy_gauss"][0])))


@contextlib.contextmanager
def isolated(device: torch.device | None) -> Iterator[None]:
    """Run a block whose random draws must not move the training streams (the states
    are kept as they are, without a tensor round trip: no host transfer)."""
    cuda = device is not None and device.type == "cuda"
    saved = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None,
             random.getstate(), np.random.get_state())
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        if cuda:
            torch.cuda.set_rng_state(saved[1], device)
        random.setstate(saved[2])
        np.random.set_state(saved[3])
