"""Events the engine emits and the listeners that receive them.

Events are small immutable records. Listeners are plain callables
``listener(event)`` called in the training thread; they must return quickly
(the GUI worker forwards each event as a queued Qt signal).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class Started(Event):
    run_dir: str
    model_id: str
    device: str
    device_reason: str
    step: int
    total_steps: int
    config: dict
    resumed: bool = False
    precision: str = "fp32"      # fp32, or the autocast dtype (bf16)


@dataclass(frozen=True)
class Metrics(Event):
    """Mean of each reported value since the previous Metrics event."""
    step: int
    time: float           # seconds since the run's first start (wall clock, across resumes)
    values: dict          # name -> float (losses, plus model status such as resolution)
    images_per_sec: float
    total_steps: int


@dataclass(frozen=True)
class Samples(Event):
    step: int
    grid: np.ndarray      # (H, W, C) uint8, C in {1, 3}
    path: str | None      # the PNG written in the run's samples/ folder


@dataclass(frozen=True)
class CheckpointWritten(Event):
    step: int
    path: str


@dataclass(frozen=True)
class Warning(Event):     # noqa: A001 - deliberate: an engine warning event
    message: str
    step: int
    kind: str = "warning"  # e.g. "collapse", "imbalance", "nan", "dataset"


@dataclass(frozen=True)
class Paused(Event):
    step: int
    reason: str = "user"


@dataclass(frozen=True)
class Resumed(Event):
    step: int


@dataclass(frozen=True)
class Finished(Event):
    step: int
    reason: str           # "completed" or "stopped"
    checkpoint: str | None


@dataclass(frozen=True)
class Failed(Event):
    step: int
    message: str          # one line for the user
    traceback: str = ""
    plugin: str = ""
    suggestion: str = ""  # e.g. "try batch_size=32"


Listener = Callable[[Event], None]
