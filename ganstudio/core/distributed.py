"""Training on several processes with torch.distributed (DistributedDataParallel).

A distributed run is started by torchrun (or ``ganstudio train --nproc-per-node``,
which runs torchrun's launcher in-process, see :mod:`ganstudio.core.launcher`).
Every process ("rank") runs the same engine; this module is what the engine
asks about the others:

- :func:`rank_info` reads torchrun's environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``).
- :class:`Ranks` joins the process group (NCCL on CUDA, gloo on a CPU), and
  offers barriers, the averaging of logged losses, the per-step agreement on
  what to do next, broadcasting rank 0's start state, wrapping a model's
  trained networks in DistributedDataParallel and checking that the ranks
  still hold identical parameters.
- :func:`rank_seed` gives each rank its own random stream.
- :mod:`ganstudio.core.engine.ranks` holds the engine's side: joining at
  preparation, sharing rank 0's start state, the parameter check before a
  checkpoint, and the run folder as ranks other than 0 see it (rank 0 is the
  one writer).

Costs: DDP averages gradients during the backward pass (bucketed all-reduce,
overlapped with the computation). The engine adds one tiny all-reduce of a
few integers per step on the host (``agree``: which of log / sample /
checkpoint / stop is due, so every rank takes the same branch; a time-based
decision taken alone on each rank would deadlock the next collective) and one
all-reduce of the stacked loss means per logged point. Neither reads a GPU
value back to the host per step.

Checkpoints hold no per-rank state: weights and optimizer states are equal on
every rank (DDP averages the gradients), counters are global, and each rank's
random streams are derived from (seed, rank, step) when a distributed run
starts or resumes. So a run resumes with any number of processes.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import pickle
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import torch

from .errors import UserError

#: torchrun's environment variables a rank reads.
ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
            "MASTER_PORT")
#: Seconds a collective may wait for the other ranks before it fails: long enough for
#: rank 0 to load and cache a large image folder while the others wait in ``share``.
DEFAULT_TIMEOUT_S = 1800.0

# indices of the flags exchanged by Ranks.agree
LOG, SAMPLE, CHECKPOINT, STOP, MONITOR_ALARM, MONITOR_QUALITY = range(6)
N_FLAGS = 6


@dataclass(frozen=True)
class RankInfo:
    """Where this process stands among the others (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes the run folder."""
        return self.rank == 0

    @property
    def label(self) -> str:
        return f"rank {self.rank}"


def _env_int(environ: Mapping[str, str], key: str, default: int | None) -> int:
    raw = environ.get(key)
    if raw is None or raw.strip() == "":
        if default is None:
            raise UserError(f"the distributed environment sets RANK but not {key}; start "
                            "the run with torchrun (or ganstudio train --nproc-per-node N)")
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"environment variable {key}={raw!r} is not a whole number") from None


def rank_info(environ: Mapping[str, str] | None = None) -> RankInfo:
    """This process's :class:`RankInfo` from torchrun's environment; rank 0 of 1 when
    the variables are absent (a plain run). Raises UserError for values that do not fit
    together (e.g. RANK 3 of WORLD_SIZE 2)."""
    env = os.environ if environ is None else environ
    if env.get("WORLD_SIZE") is None and env.get("RANK") is None:
        return RankInfo()
    world = _env_int(env, "WORLD_SIZE", None)
    rank = _env_int(env, "RANK", None)
    local = _env_int(env, "LOCAL_RANK", rank)
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", world)
    if world < 1 or not 0 <= rank < world:
        raise UserError(f"RANK={rank} does not fit WORLD_SIZE={world} (ranks are 0 to "
                        "WORLD_SIZE-1)")
    if not 0 <= local < max(local_world, 1):
        raise UserError(f"LOCAL_RANK={local} does not fit LOCAL_WORLD_SIZE={local_world}")
    if world > 1:
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            if not env.get(key):
                raise UserError(f"WORLD_SIZE={world} but {key} is not set; start the run "
                                "with torchrun, which sets it")
    return RankInfo(rank, world, local, local_world)


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA GPUs, gloo for the CPU."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def device_for_rank(device: torch.device, info: RankInfo) -> torch.device:
    """The device this rank trains on: CUDA GPU number ``LOCAL_RANK`` (one GPU per
    process); the CPU as it is. Raises UserError where no backend exists (Apple MPS)
    or when a machine runs more processes than it has GPUs."""
    device = torch.device(device)
    if not info.distributed:
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if info.local_rank >= count:
            raise UserError(f"this machine runs {info.local_world_size} processes but has "
                            f"{count} CUDA GPU(s); use --nproc-per-node {count} (or gpu)")
        return torch.device("cuda", info.local_rank)
    if device.type == "mps":
        raise UserError("training on several processes is not available on Apple MPS "
                        "(torch.distributed has no MPS backend); use one process, or "
                        "--device cpu")
    return device


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for ``rank``'s random streams at ``step`` (rank 0 at step 0 keeps ``seed``,
    so a one-process run draws what it always drew). Different ranks, or the same rank
    after a resume at another step, get unrelated streams."""
    if rank == 0 and step == 0:
        return int(seed)
    digest = hashlib.sha256(f"{int(seed)}/{int(rank)}/{int(step)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def global_batch(per_rank: int, info: RankInfo) -> int:
    """Images per step over all ranks: the batch size setting is per process."""
    return int(per_rank) * info.world_size


class DistributedError(RuntimeError):
    """A collective failed: another rank stopped, was killed, or cannot be reached."""


def is_collective_failure(error: BaseException) -> bool:
    """True for the errors torch.distributed raises when a peer is gone (gloo's
    connection errors, NCCL's aborted communicators, a collective's timeout)."""
    if isinstance(error, DistributedError):
        return True
    dist_error = getattr(torch.distributed, "DistError", None)
    if dist_error is not None and isinstance(error, dist_error):
        return True
    text = f"{type(error).__name__}: {error}".lower()
    return any(s in text for s in ("gloo", "nccl", "connection closed", "connection reset",
                                   "broken pipe", "timed out", "connection refused",
                                   "socket", "peer"))


class Ranks:
    """The joined process group of a distributed run, as the engine uses it.

    ``Ranks.start(info, device)`` joins (``init_process_group`` from torchrun's
    environment). With NCCL, the small host-side exchanges (``agree``, ``share``)
    use a second, gloo group so they never touch the GPU.
    """

    def __init__(self, info: RankInfo, device: torch.device, group: Any = None,
                 host_group: Any = None):
        self.info = info
        self.device = torch.device(device)
        self.group = group
        self.host_group = host_group
        self._owns_group = False

    # -- joining and leaving -------------------------------------------------------------------
    @classmethod
    def start(cls, info: RankInfo, device: torch.device,
              timeout_s: float = DEFAULT_TIMEOUT_S) -> "Ranks":
        import torch.distributed as dist
        if not dist.is_available():
            raise UserError("this PyTorch build has no torch.distributed; train with one "
                            "process")
        device = torch.device(device)
        backend = backend_for(device)
        if backend == "nccl":
            torch.cuda.set_device(device)
        timeout = _dt.timedelta(seconds=float(timeout_s))
        if not dist.is_initialized():
            kwargs: dict[str, Any] = {}
            if backend == "nccl":
                kwargs["device_id"] = device
            dist.init_process_group(backend=backend, timeout=timeout, **kwargs)
            owns = True
        else:
            owns = False
        host = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
        ranks = cls(info, device, dist.group.WORLD, host)
        ranks._owns_group = owns
        return ranks

    def close(self) -> None:
        """Leave the process group (only if :meth:`start` joined it)."""
        import torch.distributed as dist
        if self._owns_group and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - a peer already gone must not hide the result
                pass
        self._owns_group = False

    @property
    def backend(self) -> str:
        return backend_for(self.device)

    def _host(self) -> Any:
        return self.host_group if self.host_group is not None else self.group

    # -- collectives -----------------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait for every rank (on the host group: no GPU work is waited for)."""
        import torch.distributed as dist
        self._checked(lambda: dist.barrier(group=self._host()))

    def average(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of ``values`` (a small tensor on this rank's device, e.g.
        the stacked loss means of one logged interval). One all-reduce; no host sync."""
        import torch.distributed as dist
        out = values.detach().float().clone()
        self._checked(lambda: dist.all_reduce(out, op=dist.ReduceOp.SUM, group=self.group))
        return out / self.info.world_size

    def agree(self, flags: Sequence[int | bool]) -> list[bool]:
        """Flags raised on any rank, for all ranks (one host all-reduce of a few ints).

        The engine passes which of log / sample / checkpoint / stop / monitors this
        rank finds due (rank 0 decides the clock-driven ones) and gets back what every
        rank does at this step."""
        import torch.distributed as dist
        t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32)
        self._checked(lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._host()))
        return [bool(v) for v in t.tolist()]

    def share(self, value: Any = None) -> Any:
        """Rank 0's ``value`` on every rank (pickled over the host group). Rank 0 passes
        the value; the others pass nothing and receive it. An exception instance is
        re-raised on the receiving ranks, so a failure on rank 0 while preparing
        reaches every rank instead of leaving them waiting."""
        import torch.distributed as dist
        box = [value if self.info.is_writer else None]
        if self.info.is_writer:
            try:
                pickle.dumps(value)
            except Exception as e:  # noqa: BLE001 - say what could not travel
                box = [DistributedError(f"rank 0 could not send its start state: {e}")]
        self._checked(lambda: dist.broadcast_object_list(box, src=0, group=self._host()))
        got = box[0]
        if not self.info.is_writer and isinstance(got, BaseException):
            raise got
        return got

    def max_difference(self, tensors: Iterable[torch.Tensor]) -> float:
        """The largest difference between ranks over ``tensors`` (0.0: identical on every
        rank). Two all-reduces of the flattened values; meant for checkpoints, not steps."""
        import torch.distributed as dist
        flat = [t.detach().float().reshape(-1) for t in tensors]
        if not flat:
            return 0.0
        hi = torch.cat(flat)
        lo = -hi
        self._checked(lambda: dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=self.group))
        self._checked(lambda: dist.all_reduce(lo, op=dist.ReduceOp.MAX, group=self.group))
        return float((hi + lo).max().item()) if hi.numel() else 0.0

    def schedule(self, log: bool, sample: bool, checkpoint: bool,
                 stop: bool) -> tuple[bool, bool, bool, bool]:
        """What every rank does after this step: rank 0's clock decides logging, sample
        grids and checkpoints (a rank deciding alone by its own clock would leave the
        others waiting in a collective); a stop asked on any rank stops all."""
        flags = [0] * N_FLAGS
        if self.info.is_writer:
            flags[LOG], flags[SAMPLE], flags[CHECKPOINT] = log, sample, checkpoint
        flags[STOP] = stop
        agreed = self.agree(flags)
        return agreed[LOG], agreed[SAMPLE], agreed[CHECKPOINT], agreed[STOP]

    def lost_contact(self, error: BaseException, when: str = "") -> DistributedError:
        """The error a rank reports when a collective failed because a peer is gone."""
        first = _first_sentence(str(error))
        return DistributedError(
            f"{self.info.label} lost contact with the other ranks{' ' + when if when else ''} "
            f"(one of them stopped, failed or was killed): {type(error).__name__}: {first}")

    def _checked(self, call) -> Any:
        try:
            return call()
        except DistributedError:
            raise
        except Exception as e:  # noqa: BLE001 - classify, keep the original as the cause
            if is_collective_failure(e):
                raise self.lost_contact(e) from e
            raise

    # -- the networks -----------------------------------------------------------------------------
    def wrap(self, model: Any, spec_id: str = "") -> dict[str, torch.nn.Module]:
        """Wrap the networks ``model.trained_networks()`` declares in
        DistributedDataParallel and hand the wrappers to the model
        (``model.use_wrapped_networks``). Wrapping broadcasts rank 0's weights and
        buffers, so every rank starts identical. Raises UserError when the model
        declares no networks."""
        from torch.nn.parallel import DistributedDataParallel as DDP
        networks = model.trained_networks() if hasattr(model, "trained_networks") else {}
        if not networks:
            raise UserError(f"model '{spec_id}' declares capability 'ddp' but its "
                            "trained_networks() is empty; it cannot train on several "
                            "processes")
        if not hasattr(model, "use_wrapped_networks"):
            raise UserError(f"model '{spec_id}' declares capability 'ddp' but has no "
                            "use_wrapped_networks(); it cannot train on several processes")
        ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = {}
        for name, net in networks.items():
            if not any(p.requires_grad for p in net.parameters()):
                wrapped[name] = net  # nothing to average
                continue
            # find_unused_parameters: a network may leave parts idle at a step (a
            # progressive GAN's later blocks); DDP then marks them ready itself.
            wrapped[name] = DDP(net, device_ids=ids, find_unused_parameters=True,
                                **_sync_buffers_each_forward())
        model.use_wrapped_networks(wrapped)
        return wrapped


def _sync_buffers_each_forward() -> dict[str, bool]:
    """Rank 0's buffers (batch-norm statistics) copied to the others at each forward:
    the keyword is ``forward_sync_buffers`` in newer PyTorch, ``broadcast_buffers`` before."""
    import inspect
    from torch.nn.parallel import DistributedDataParallel as DDP
    params = inspect.signature(DDP.__init__).parameters
    return {"forward_sync_buffers": True} if "forward_sync_buffers" in params else {
        "broadcast_buffers": True}


def _first_sentence(text: str) -> str:
    """The gist of a backend error: its first line, without a source location such as
    ``[.../gloo/transport/tcp/pair.cc:545]``, up to its first sentence."""
    import re
    line = text.strip().splitlines()[0] if text.strip() else ""
    line = re.sub(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", line)
    end = line.find(". ")
    return (line[:end] if end > 0 else line).rstrip(". ")


def check_capability(spec: Any, info: RankInfo) -> None:
    """UserError when a run asks for several processes and the model cannot."""
    if info.distributed and not spec.has("ddp"):
        raise UserError(f"model '{spec.id}' cannot train on several processes (it does "
                        f"not declare capability 'ddp'); run it with one process "
                        f"(this run has {info.world_size})")
