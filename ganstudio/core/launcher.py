"""Starting a run on several processes: torchrun's launcher, run in-process.

``ganstudio train --nproc-per-node N ...`` calls :func:`launch`, which runs
PyTorch's elastic launcher (what ``torchrun`` runs) with the same arguments
and one worker per process: ``python -m ganstudio train ...`` with torchrun's
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). Each worker
joins the process group in the engine (:mod:`ganstudio.core.distributed`).

Faults: the launcher watches its workers every ``monitor_interval`` seconds;
when one exits with an error or is killed (``kill -9``), it stops the others
(SIGTERM, then SIGKILL after ``shutdown_timeout`` seconds), and :func:`launch`
writes which rank ended how to the run's events.log. Nothing is restarted: the
run stays resumable from its last checkpoint with ``--resume``, with the same
or another number of processes.
"""
from __future__ import annotations

import os
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import UserError
from .runs import RunFolder


@dataclass(frozen=True)
class RankFailure:
    """How one worker ended (from torchrun's record of it)."""

    rank: int
    local_rank: int
    pid: int
    exitcode: int
    signal_name: str = ""     # "SIGKILL" when killed by a signal
    host: str = ""

    @property
    def stopped_by_launcher(self) -> bool:
        """SIGTERM: how the launcher stops the other ranks once one has failed."""
        return self.signal_name == "SIGTERM"

    def describe(self) -> str:
        how = ("was stopped (SIGTERM)" if self.stopped_by_launcher else
               f"was killed by {self.signal_name}" if self.signal_name
               else f"exited with code {self.exitcode}")
        where = f" on {self.host}" if self.host else ""
        return f"rank {self.rank} (pid {self.pid}{where}) {how}"


@dataclass
class LaunchResult:
    """What became of a launched run: ``exit_code`` 0 when every rank finished."""

    exit_code: int
    nproc_per_node: int
    failures: list[RankFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def processes_per_node(value: str | int) -> int:
    """``--nproc-per-node``: a number, or ``gpu`` (every visible CUDA GPU)."""
    text = str(value).strip().lower()
    if text == "gpu":
        import torch
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError("--nproc-per-node gpu: this machine has no CUDA GPU; give a "
                            "number of processes (they train on the CPU with gloo)")
        return count
    try:
        n = int(text)
    except ValueError:
        raise UserError(f"--nproc-per-node must be a number or 'gpu', got {value!r}") from None
    if n < 1:
        raise UserError(f"--nproc-per-node must be at least 1, got {n}")
    return n


def _signal_name(exitcode: int) -> str:
    if exitcode >= 0:
        return ""
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def launch(train_args: Sequence[str], *, nproc_per_node: str | int, run_dir: str | os.PathLike,
           nnodes: str = "1", rdzv_endpoint: str = "", rdzv_id: str = "",
           monitor_interval: float = 0.5, shutdown_timeout: int = 15) -> LaunchResult:
    """Run ``ganstudio <train_args>`` on ``nproc_per_node`` processes (of ``nnodes``
    machines) under torchrun's launcher, and return how it ended.

    ``train_args`` is the ``train`` command line without the launcher's options.
    One machine (``nnodes="1"`` and no endpoint) rendezvouses on a free local port,
    like ``torchrun --standalone``. Several machines give ``nnodes`` and the same
    ``rdzv_endpoint`` (``host:port`` of one of them) and ``rdzv_id`` on each.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch
    from torch.distributed.run import parse_min_max_nnodes

    nproc = processes_per_node(nproc_per_node)
    try:
        min_nodes, max_nodes = parse_min_max_nnodes(str(nnodes))
    except Exception:  # noqa: BLE001 - its own message names no option
        raise UserError(f"--nnodes must be N or MIN:MAX, got {nnodes!r}") from None
    if max_nodes > 1 and not rdzv_endpoint:
        raise UserError("several machines (--nnodes) need --rdzv-endpoint HOST:PORT, the "
                        "same on every machine")
    endpoint = rdzv_endpoint or "localhost:0"
    # Like torchrun: one process per core group, not every process on every core. On
    # a CPU the cores are shared out; on GPUs each process needs only a few threads.
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    config = LaunchConfig(
        min_nodes=min_nodes, max_nodes=max_nodes, nproc_per_node=nproc,
        run_id=rdzv_id or (str(uuid.uuid4()) if not rdzv_endpoint else "ganstudio"),
        rdzv_endpoint=endpoint, rdzv_backend="c10d", max_restarts=0,
        monitor_interval=monitor_interval, start_method="spawn",
        shutdown_timeout=shutdown_timeout)
    run = RunFolder(run_dir)
    args = ["-m", "ganstudio", *train_args]
    try:
        elastic_launch(config, entrypoint=sys.executable)(*args)
    except ChildFailedError as e:
        failures = []
        for rank, failure in sorted(e.failures.items()):
            failures.append(RankFailure(
                rank=int(rank), local_rank=int(getattr(failure, "local_rank", rank)),
                pid=int(getattr(failure, "pid", -1)), exitcode=int(failure.exitcode),
                signal_name=_signal_name(int(failure.exitcode)),
                host=str(getattr(failure, "hostname", "") or "")))
        # the cause first: the ranks the launcher stopped with SIGTERM come after
        failures.sort(key=lambda f: (f.stopped_by_launcher, f.rank))
        _log_failures(run, failures, nproc)
        code = 1
        if any(f.exitcode == 2 for f in failures) and not any(f.signal_name for f in failures):
            code = 2  # a user error (bad setting, missing folder) on the ranks
        return LaunchResult(code, nproc, failures)
    return LaunchResult(0, nproc)


def _log_failures(run: RunFolder, failures: list[RankFailure], nproc: int) -> None:
    """The launcher's account of a failed run, in events.log (when the folder exists)."""
    if not failures or not Path(run.path).is_dir():
        return
    first = failures[0]
    lines = [f"launcher: {f.describe()}" for f in failures]
    lines.append(f"launcher: every rank was stopped after {first.describe().split(' (')[0]} "
                 "ended; the run can be resumed from its last checkpoint (--resume, with "
                 "this or another number of processes)")
    run.log("\n".join(lines), "ERROR")
