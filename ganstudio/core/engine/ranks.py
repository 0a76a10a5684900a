"""The engine on several processes: its seams with :mod:`ganstudio.core.distributed`.

The engine calls these at a few points of its preparation and loop; each does
nothing in a one-process run:

- :func:`join` (after the device is chosen): check the model's capability, take
  this rank's device, join the process group, take rank 0's settings;
- :func:`share_start` (end of preparation): rank 0's start state on every rank,
  the trained networks wrapped in DDP, each rank's own random streams;
- :func:`tell_waiting_ranks`: rank 0 failed while preparing, the others are told;
- :func:`check_in_step` (before rank 0 writes a checkpoint): the ranks' parameters
  must be identical.

:class:`FollowerRun` is the run folder as ranks other than 0 see it: it reads
like a run folder and writes nothing except its warnings and errors, prefixed
with the rank, to events.log. Rank 0 is the one writer.

``engine`` is a :class:`ganstudio.core.engine.Engine` (not imported: no cycle).
"""
from __future__ import annotations

import os
import platform
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..distributed import (DistributedError, RankInfo, Ranks, check_capability,
                           device_for_rank, rank_seed)
from ..errors import UserError
from ..runs import RunFolder


def join(engine: Any) -> None:
    """After the device is chosen: a distributed run (world size > 1) checks the model's
    capability, takes this rank's device, joins the process group and takes rank 0's
    settings (every rank trains the same config)."""
    info = engine.rank_info
    if not info.distributed:
        return
    check_capability(engine.spec, info)
    from ..devices import DeviceChoice
    device = device_for_rank(engine.device.device, info)
    engine.device = DeviceChoice(device, f"{engine.device.reason}; {info.label} of "
                                 f"{info.world_size}", engine.device.autocast_dtype)
    engine.ranks = Ranks.start(info, device)
    say = getattr(engine.run, "announce", engine.run.log)   # every rank says where it runs
    say(f"{info.label} of {info.world_size} joined (pid {os.getpid()}, host "
        f"{platform.node()}, {engine.ranks.backend}, device {device})")
    engine.config = engine.ranks.share(engine.config if info.is_writer else None)


def share_start(engine: Any) -> None:
    """At the end of preparation: rank 0's state (restored from a checkpoint, or fresh)
    on every rank, the trained networks wrapped in DDP, and each rank's own random
    streams seeded from (seed, rank, step)."""
    ranks, info = engine.ranks, engine.rank_info
    if ranks is None:
        return
    mine = ((engine.checkpoints.state(),
             str(engine.resumed_from) if engine.resumed_from else None)
            if info.is_writer else None)
    state, resumed_from = ranks.share(mine)
    if not info.is_writer:
        engine.checkpoints.restore(state)
        engine.resumed_from = Path(resumed_from) if resumed_from else None
    seed = int(engine.config.get("seed", 0))
    torch.manual_seed(rank_seed(seed, info.rank, engine.step))
    random.seed(rank_seed(seed + 2, info.rank, engine.step))
    np.random.seed(rank_seed(seed + 3, info.rank, engine.step) % 2**32)
    if engine.data is not None:
        engine.data.generator.manual_seed(rank_seed(seed + 1, info.rank, engine.step))
    ranks.wrap(engine.model, engine.spec.id)


def tell_waiting_ranks(engine: Any, error: BaseException) -> None:
    """Rank 0 failed while preparing and the others wait for its start state: send them
    the error, so that each stops with the same message instead of waiting."""
    ranks = getattr(engine, "ranks", None)
    if ranks is None or not engine.rank_info.is_writer or engine._prepared \
            or isinstance(error, DistributedError):
        return
    try:
        ranks.share(error if isinstance(error, UserError) else
                    DistributedError(f"rank 0 failed while preparing: {error}"))
    except Exception:  # noqa: BLE001 - the launcher stops them anyway
        pass


def check_in_step(engine: Any) -> None:
    """Before rank 0 writes a checkpoint (every rank comes here: it is also a barrier):
    the trained parameters must be identical on every rank. Logged; a difference is a
    warning naming its size."""
    params = [p for net in engine.model.trained_networks().values() for p in net.parameters()]
    diff = engine.ranks.max_difference(params)
    n = engine.rank_info.world_size
    if diff == 0.0:
        engine.run.log(f"step {engine.step}: parameters identical on all {n} ranks")
    else:
        engine.warn(f"step {engine.step}: the ranks' parameters differ by up to {diff:.3g}; "
                     "the model does something per rank that DDP does not average", "ddp")


class _NoLock:
    locked = False

    def release(self) -> None:
        pass

    def __enter__(self) -> "_NoLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


class FollowerRun(RunFolder):
    """The run folder as ranks other than 0 see it: readable, never written.

    Rank 0 is the one writer of run.json, metrics, samples and checkpoints. A
    follower's warnings and errors still reach events.log, each line prefixed
    with its rank (appends of one short line are atomic on a local disk)."""

    def __init__(self, path: Any, info: RankInfo):
        super().__init__(path)
        self.rank_info = info

    def create(self, info: dict) -> None:
        pass

    def write_info(self, info: dict) -> None:
        pass

    def update_info(self, **changes: Any) -> dict:
        return self.read_info() if self.exists() else dict(changes)

    def append_metrics(self, rows: list[dict]) -> None:
        pass

    def truncate_metrics_after(self, step: int) -> None:
        pass

    def prune_samples_after(self, step: int) -> int:
        return 0

    def set_history_aside(self) -> None:
        return None

    def lock(self) -> Any:
        return _NoLock()

    def log(self, message: str, level: str = "INFO") -> None:
        if level in ("WARNING", "ERROR"):
            self.announce(message, level)

    def announce(self, message: str, level: str = "INFO") -> None:
        """Write ``message`` to events.log, prefixed with this rank, whatever its level."""
        lines = str(message).rstrip("\n").split("\n")
        super().log("\n".join(f"{self.rank_info.label}: {line}" for line in lines), level)
