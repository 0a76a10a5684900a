"""The engine and its step loop.

Per step: (1) draw a batch from the device-resident dataset, (2) ask the model
plugin for one training step, (3) add the returned loss tensors to on-device
accumulators. No ``.item()`` per step: the accumulators come to the host as one
small transfer when a metrics line is due. Between steps: commands (pause,
resume, stop, checkpoint now, roll back), then what :mod:`.schedule` says is
due (monitors, the metrics line, the sample grid, a checkpoint).

The other parts: :mod:`.preparation` (lock, data, model, restore),
:mod:`.checkpointing`, :mod:`.failures` (failures as data, the NaN check),
:mod:`.monitoring` and :mod:`.randomness`.
"""
from __future__ import annotations

import math
import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .. import distributed as dist
from . import ranks as seams
from .. import events as ev
from ..cpu_share import CpuShare
from ..data import DatasetReport, DeviceImages
from ..devices import DeviceChoice
from ..errors import UserError
from ..images import make_grid, save_png
from ..model import FOLDER_KINDS, ModelSpec
from ..run_lock import RunLock
from ..runs import RunFolder, warning_tag
from . import preparation, randomness
from .checkpointing import Checkpoints
from .failures import (AGAIN, DiskError, Failures, PluginFailure, describe_os_error,
                       describe_step_output, is_out_of_memory)
from .monitoring import MonitorRunner
from .schedule import Schedule
from .settings import Commands, EngineSettings

STOP = "stop"


class Engine:
    """Drives one run. Create it, call :meth:`prepare` then :meth:`run_loop` (same thread).

    Commands (:meth:`pause`, :meth:`resume`, :meth:`stop`, :meth:`checkpoint_now`,
    :meth:`rollback`) may be called from any thread.
    """

    def __init__(self, spec: ModelSpec, run_dir: str | Path, *,
                 data_folder: str | Path | None = None,
                 overrides: dict[str, Any] | None = None,
                 settings: EngineSettings | None = None,
                 listeners: Iterable[Callable[[ev.Event], None]] = (),
                 resume: bool = False,
                 restart: bool = False,
                 images: torch.Tensor | None = None,
                 cache_dir: str | Path | None = None,
                 plugin_version: str = "",
                 init_from: str | None = None):
        self.spec = spec
        # torchrun's environment: rank 0 (or a plain run) writes the run folder; the
        # other ranks see it through a FollowerRun that writes only their warnings
        self.rank_info = dist.rank_info()
        self.ranks: dist.Ranks | None = None       # the joined process group (world > 1)
        self.run = (RunFolder(run_dir) if self.rank_info.is_writer
                    else seams.FollowerRun(run_dir, self.rank_info))
        self.data_folder = Path(data_folder).expanduser() if data_folder else None
        self.overrides = dict(overrides or {})
        self.settings = settings or EngineSettings()
        self.listeners = list(listeners)
        self.resume_requested = resume
        #: Start an existing run over: its history is moved to RUN/previous-<time>/ first.
        self.restart_requested = restart
        self.history_moved_to: Path | None = None
        self.preloaded = images
        self.cache_dir = cache_dir
        self.plugin_version = plugin_version
        self.init_from = init_from        # RUN[:CHECKPOINT] a new run starts from (finetune)
        self.init_record: dict[str, Any] | None = None
        self.commands = Commands()
        self.step = 0
        self.images_seen = 0
        self.elapsed = 0.0
        self.config: dict[str, Any] = {}
        self.model: Any = None
        self.data: DeviceImages | None = None
        self.report: DatasetReport | None = None
        #: Settings chosen from the data because the user left them open (e.g. channels=1
        #: for a folder of greyscale images); the faces say so.
        self.chosen_from_data: dict[str, Any] = {}
        self.device: DeviceChoice | None = None
        self.fixed_noise: torch.Tensor | None = None
        self.holdout: torch.Tensor | None = None   # images D never sees (the overfitting check)
        self.resumed_from: Path | None = None
        self.last_checkpoint: Path | None = None
        self.lock: RunLock | None = None
        self.pause_reason = "user"
        self.extra_values: dict[str, float] = {}   # monitor values for the next metrics line
        self.checkpoints = Checkpoints(self)
        self.failures = Failures(self)
        self.monitors = MonitorRunner(self)
        self._cpu_share: CpuShare | None = None   # on a CPU: threads for the free cores
        self._prepared = False
        self._acc: dict[str, torch.Tensor] = {}   # sums on the device ...
        self._counts: dict[str, int] = {}          # ... and how many steps gave each value
        self._n_acc = 0
        self._imgs_since = 0
        self._schedule: Schedule | None = None
        self._agreed_stop = False   # distributed: a stop every rank has agreed on

    # -- commands (any thread) ---------------------------------------------------------------
    def pause(self) -> None:
        self.commands.set(paused=True)

    def resume(self) -> None:
        self.commands.set(paused=False)

    def stop(self) -> None:
        self.commands.set(stop=True, paused=False)

    def checkpoint_now(self) -> None:
        self.commands.set(checkpoint=True)

    def rollback(self, lr_factor: float = 0.5) -> None:
        """Go back to the last good checkpoint and scale learning rates (after NaN)."""
        self.commands.set(rollback=float(lr_factor), paused=False)

    @property
    def is_paused(self) -> bool:
        return self.commands.paused

    # -- events ------------------------------------------------------------------------------
    def emit(self, event: ev.Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop training
                self.run.log(f"listener {listener!r} failed:\n{traceback.format_exc()}", "ERROR")

    def warn(self, message: str, kind: str = "warning", *, settings: dict | None = None,
             action: str = "") -> None:
        self.run.log(f"{message} {warning_tag(kind, self.step)}", "WARNING")
        self.emit(ev.Warning(message, self.step, kind, dict(settings or {}), action))

    # -- preparation (see .preparation) ------------------------------------------------------
    def prepare(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Lock the run folder, prepare the data, build the model, restore the latest
        checkpoint when resuming. Raises UserError for what the user can fix: a folder
        that cannot be written, a device out of memory while building, a run already
        being trained elsewhere (then nothing in the folder was touched)."""
        try:
            preparation.prepare(self, progress)
        except BaseException as e:
            seams.tell_waiting_ranks(self, e)   # rank 0 failed: the waiting ranks stop too
            self.close()
            if isinstance(e, UserError) or not isinstance(e, Exception):
                raise
            if isinstance(e, OSError):
                raise UserError(f"cannot write the run folder ({e.filename or self.run.path}): "
                                f"{describe_os_error(e)}") from None
            if not is_out_of_memory(e):
                raise
            if self.device and self.device.device.type == "cuda":
                torch.cuda.empty_cache()
            bs = int(self.config.get("batch_size", 0) or 0)
            hint = f" (or batch_size={max(1, bs // 2)})" if bs > 1 else ""
            raise UserError("the device ran out of memory while preparing the run; try a "
                            f"smaller model or resolution{hint}, or another device") from None
        self._prepared = True

    def build_model(self) -> None:
        """Build the model from the current config and give it the data.

        The seam for distributed training: ``self.model.trained_networks()`` are the
        networks to wrap, right after this call."""
        shape = self.data.shape if self.data is not None else None
        self.model = self.spec.factory(self.config, shape, self.device.device)
        if self.data is not None:
            self.model.attach_data(self.data)

    def close(self) -> None:
        """Release the run folder's lock (the end of :meth:`run_loop` does it too)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if self.ranks is not None:            # leave the process group
            self.ranks.close()
            self.ranks = None

    # -- what the schedule asks for ----------------------------------------------------------
    @torch.no_grad()
    def render_samples(self) -> ev.Samples | None:
        """The grid of the fixed latents (or the job's preview), with training's random
        streams isolated: a model that draws noise while sampling does not shift them.
        Rank 0 alone renders in a distributed run (None elsewhere)."""
        if not self.rank_info.is_writer:
            return None
        folder = self.spec.kind in FOLDER_KINDS
        where = "sample" if folder else "preview"
        try:
            with randomness.isolated(self.device.device if self.device else None):
                images = self.model.sample(self.fixed_noise) if folder else self.model.preview()
            if not isinstance(images, torch.Tensor) or images.dim() != 4:
                shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
                raise TypeError(f"{where}() must return a tensor (N, C, H, W) in [-1, 1], got {shape}")
        except Exception as e:
            if is_out_of_memory(e):
                raise
            raise PluginFailure(where, traceback.format_exc()) from e
        grid = make_grid(images.float(), nrow=None if images.shape[0] > 1 else 1)
        path = None
        try:
            path = str(save_png(grid, self.run.sample_path(self.step), within=self.run.path))
        except OSError as e:
            self.run.log(f"could not save the sample grid: {e}", "WARNING")
        event = ev.Samples(self.step, grid, path)
        self.emit(event)
        return event

    def write_checkpoint(self) -> Path | None:
        return self.checkpoints.write()

    def flush_metrics(self) -> bool:
        """Bring the accumulated means to the host (one transfer) and log them as one
        metrics line; False when a value is not finite."""
        if self._n_acc == 0:
            return True
        names = list(self._acc)
        # a value returned only on some steps (a penalty every 4th) is the mean of those
        stacked = (torch.stack([self._acc[k] / self._counts[k] for k in names])
                   if names else None)
        if self.ranks is not None and stacked is not None:
            stacked = self.ranks.average(stacked)  # the mean over every rank: one all-reduce
        means = stacked.tolist() if stacked is not None else []
        t = time.perf_counter()
        ips = self._imgs_since * self.rank_info.world_size / max(t - self._schedule.t_log, 1e-9)
        values = dict(zip(names, means))
        values.update(self.model.status())
        values.update(self.extra_values)
        self.extra_values = {}
        finite = all(math.isfinite(v) for v in means)
        if finite:
            self.failures.diverged = False  # finite again ("resume anyway"): saving is safe
        try:
            self.run.append_metrics([{"step": self.step, "time": round(self.elapsed, 3),
                                      **values, "img_per_s": round(ips, 2)}])
        except OSError as e:
            raise DiskError(f"could not write {self.run.metrics_path}: "
                            f"{describe_os_error(e)}; the run stopped") from e
        self.emit(ev.Metrics(self.step, self.elapsed, values, ips, self.settings.total_steps))
        self._acc, self._counts, self._n_acc, self._imgs_since = {}, {}, 0, 0
        self._schedule.logged(t)
        return finite

    # -- the loop ----------------------------------------------------------------------------
    def run_loop(self) -> ev.Event:
        """Train until ``total_steps`` or a stop; returns the Finished or Failed event.
        The run folder's writer lock, taken by :meth:`prepare`, is held until the end."""
        if not self._prepared:
            self.prepare()
        try:
            failed = None
            try:
                return self._loop()
            except Exception as e:  # noqa: BLE001 - every failure becomes a Failed event
                failed = self.failures.from_exception(e)
                if failed is not None:
                    return failed
            # only an out-of-memory error gets here, after its traceback was released
            return self.failures.out_of_memory()
        finally:
            share = getattr(self, "_cpu_share", None)
            if share is not None:      # the process's threads as the run found them
                torch.set_num_threads(share.max_threads)
            self.close()

    def _loop(self) -> ev.Event:
        s, dev = self.settings, self.device
        self.emit(ev.Started(str(self.run.path), self.spec.id, dev.name, dev.reason,
                             self.step, s.total_steps, dict(self.config),
                             resumed=self.resumed_from is not None, precision=dev.precision))
        now = time.perf_counter()
        self._schedule = schedule = Schedule(s, self.step, now)
        first_cost = 0.0
        if self.step == 0 or not self.run.list_samples():
            self.render_samples()
            first_cost = time.perf_counter() - now
            schedule.sampled(self.step, now)
        self.monitors.start(time.perf_counter(), first_cost)
        self._cpu_share = self._start_cpu_share()
        t_run = time.perf_counter()
        while self.step < s.total_steps:
            t_before = time.perf_counter()
            between = self._between_steps()                 # commands from other threads
            if between == STOP:
                break
            if isinstance(between, ev.Failed):
                return between
            if between == AGAIN:
                t_run += time.perf_counter() - t_before     # paused time is not training
                continue
            real, n = self._batch()                         # (1) the batch
            out = self._train_step(real)                    # (2) the model's step
            if out is None:
                real = None
                return self.failures.out_of_memory()
            self._accumulate(out, n)                        # (3) on the device, no sync
            now = time.perf_counter()
            self.elapsed += now - t_run
            t_run = now
            after = self._scheduled_work(now)               # monitors, log, grid, checkpoint
            if isinstance(after, ev.Failed):
                return after
        return self._finish()

    def _between_steps(self) -> None | str | ev.Failed:
        c = self.commands
        if c.checkpoint:
            c.set(checkpoint=False)
            checked = self.failures.checked_flush()
            if checked is not None:
                return checked
            self.write_checkpoint()
            self._schedule.checkpointed(self.step, time.perf_counter())
        if c.stop if self.ranks is None else self._agreed_stop:
            return STOP
        if c.rollback is not None:
            factor = c.rollback or 0.5
            c.set(rollback=None)
            self.failures.rollback(factor)
            self._acc, self._counts, self._n_acc = {}, {}, 0
        if c.paused:
            self.flush_metrics()
            paused_at = time.perf_counter()
            if not self._wait_while_paused():
                return STOP
            pause = time.perf_counter() - paused_at
            self._schedule.paused_for(pause)
            self.monitors.paused_for(pause)
            return AGAIN
        return None

    def _batch(self) -> tuple[torch.Tensor | None, int]:
        """The real batch for this step, already on the device, and its size. A model
        that declares ``draws_own_batches`` gets None (it keeps its own data)."""
        want = self.model.batch_size if self.data is not None else 1
        own = bool(getattr(self.model, "draws_own_batches", False))
        if self.data is None or own:
            return None, want
        real = self.data.batch(want)
        return real, int(real.shape[0])

    def _train_step(self, real: torch.Tensor | None) -> dict[str, torch.Tensor] | None:
        """The model's step under the device's autocast; None on out of memory."""
        autocast = self.device.autocast_dtype
        try:
            if autocast is not None:
                with torch.autocast(self.device.device.type, dtype=autocast):
                    out = self.model.train_step(real)
            else:
                out = self.model.train_step(real)
        except Exception as e:
            if self.ranks is not None and dist.is_collective_failure(e):
                raise self.ranks.lost_contact(e, f"during step {self.step + 1}") from e
            if not is_out_of_memory(e):
                raise PluginFailure("train_step", traceback.format_exc()) from e
            return None
        if not isinstance(out, dict) or not all(
                isinstance(v, torch.Tensor) and v.numel() == 1 for v in out.values()):
            try:
                raise TypeError("train_step must return a dict of name -> scalar tensor "
                                f"(detached, no .item()), got {describe_step_output(out)}")
            except TypeError as e:
                raise PluginFailure("train_step", traceback.format_exc()) from e
        return out

    def _accumulate(self, out: dict[str, torch.Tensor], n: int) -> None:
        for k, v in out.items():
            v = v.detach().float()
            self._acc[k] = self._acc[k] + v if k in self._acc else v
            self._counts[k] = self._counts.get(k, 0) + 1
        self._n_acc += 1
        self.step += 1
        self.images_seen += n * self.rank_info.world_size   # the batch size is per rank
        self._imgs_since += n

    def _start_cpu_share(self) -> CpuShare | None:
        if (not self.settings.share_cpu or self.device.device.type != "cpu"
                or "OMP_NUM_THREADS" in os.environ):
            return None
        share = CpuShare(torch.get_num_threads())
        return share if share.available and share.max_threads > 1 else None

    def _share_cpu(self) -> None:
        """Between steps on a CPU: the threads the other programs leave cores for."""
        share = self._cpu_share
        threads = share.poll() if share is not None else None
        if threads is not None:
            torch.set_num_threads(threads)
            self.run.log(f"step {self.step}: {threads} CPU thread(s) (other programs use "
                         f"{share.others:.1f} of {share.cores} cores)")

    def _scheduled_work(self, now: float) -> None | str | ev.Failed:
        self._share_cpu()
        self.monitors.after_step(now)
        due = self._schedule.after_step(self.step, time.perf_counter(),
                                        pending_values=bool(self.extra_values))
        if self.ranks is not None:   # every rank takes the same branches (rank 0's clock)
            due.log, due.samples, due.checkpoint, self._agreed_stop = self.ranks.schedule(
                due.log, due.samples, due.checkpoint, self.commands.stop)
        if due.log or due.checkpoint:  # never save a checkpoint of diverged weights
            checked = self.failures.checked_flush()
            if checked is not None:
                return checked
        if due.samples:
            self.render_samples()
            self._schedule.sampled(self.step, time.perf_counter())
        if due.checkpoint:
            self.write_checkpoint()
            self._schedule.checkpointed(self.step, time.perf_counter())
        return None

    def _finish(self) -> ev.Event:
        """Completed or stopped: the last metrics, grid and checkpoint."""
        schedule = self._schedule
        finite = self.flush_metrics()
        if schedule.last_sample_step != self.step:
            self.render_samples()
        ckpt = None
        if finite and (schedule.last_ckpt_step != self.step or self.last_checkpoint is None):
            ckpt = self.write_checkpoint() or self.last_checkpoint
        elif self.last_checkpoint is not None:
            ckpt = self.last_checkpoint
        if not finite:
            self.failures.diverged = True
            self.warn(f"losses were NaN or infinite when the run stopped at step {self.step}; "
                      "no checkpoint was written for it", ev.NAN, action=ev.ROLLBACK)
        reason = "completed" if self.step >= self.settings.total_steps else "stopped"
        self.run.log(f"{reason} at step {self.step}")
        done = ev.Finished(self.step, reason, str(ckpt) if ckpt else None)
        self.emit(done)
        return done

    def _wait_while_paused(self) -> bool:
        """Block until resumed (True) or stopped (False); serves checkpoint requests."""
        self.emit(ev.Paused(self.step, self.pause_reason))
        self.run.log(f"paused at step {self.step}")
        self.pause_reason = "user"
        with self.commands.cond:
            while self.commands.paused and not self.commands.stop:
                if self.commands.checkpoint:
                    self.commands.checkpoint = False
                    self.commands.cond.release()
                    try:
                        self.write_checkpoint()
                    finally:
                        self.commands.cond.acquire()
                self.commands.cond.wait(timeout=0.2)
        if self.commands.stop:
            return False
        self.emit(ev.Resumed(self.step))
        self.run.log(f"resumed at step {self.step}")
        return True


def train(spec: ModelSpec, run_dir: str | Path, **kwargs: Any) -> ev.Event:
    """Convenience: build an Engine, prepare, run; returns the final event."""
    engine = Engine(spec, run_dir, **kwargs)
    engine.prepare()
    return engine.run_loop()
