"""Events the engine emits and the listeners that receive them.

Events are small immutable records. Listeners are plain callables
``listener(event)`` called in the training thread; they must return quickly
(the GUI worker forwards each event as a queued Qt signal).
"""
from __future__ import annotations

from dataclasses import dataclass, field
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


#: What a warning or failure suggests doing next (``action`` of Warning / Failed):
RESUME = "resume"          # change ``settings`` / ``run_options`` and resume the run
ROLLBACK = "rollback"      # go back to the last good checkpoint (lower learning rates)
RESTART = "restart"        # start the run again (e.g. no checkpoint to go back to)
ADD_IMAGES = "add_images"  # nothing left to change: the folder may be too small or too varied
ACTIONS = (RESUME, ROLLBACK, RESTART, ADD_IMAGES)


@dataclass(frozen=True)
class Warning(Event):     # noqa: A001 - deliberate: an engine warning event
    """Something the user may want to act on; training goes on.

    ``kind`` says what happened (e.g. "collapse", "imbalance", "nan", "dataset",
    "checkpoint", "rollback"); ``settings`` are model settings worth changing
    (name -> value) and ``action`` one of :data:`ACTIONS` or "". The message
    states the facts in plain words; how to apply a suggestion is for each face
    (the CLI's ``--set``, the studio's form) to say.
    """
    message: str
    step: int
    kind: str = "warning"
    settings: dict = field(default_factory=dict)
    action: str = ""


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


#: ``Failed.kind`` values (a face words each one its own way)
OUT_OF_MEMORY = "out_of_memory"
NAN = "nan"
PRECISION = "precision"        # the plugin failed on bf16 under the engine's autocast
PLUGIN_ERROR = "plugin_error"
DISK_FULL = "disk_full"        # also a file-size limit or another write error
USER_ERROR = "user_error"      # a UserError (e.g. the run is locked by another process)
INTERNAL = "internal"
DISTRIBUTED = "distributed"    # another process of a distributed run stopped or was killed


@dataclass(frozen=True)
class Failed(Event):
    """The run stopped. ``message`` states what happened in one line (no command-line
    flags or studio words); ``kind`` is one of the constants above; the suggestion
    is structured: ``settings`` (model settings to change, name -> value),
    ``run_options`` (how the run is driven, e.g. ``{"precision": "fp32"}``) and
    ``action`` (one of :data:`ACTIONS`, or "")."""
    step: int
    message: str
    traceback: str = ""
    plugin: str = ""
    kind: str = INTERNAL
    settings: dict = field(default_factory=dict)
    run_options: dict = field(default_factory=dict)
    action: str = ""

    @property
    def suggestion(self) -> str:
        """The settings as ``key=value`` words (for logs and older readers)."""
        return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in self.settings.items())


Listener = Callable[[Event], None]
