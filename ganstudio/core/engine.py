"""The one training engine. The CLI, the studio's worker thread and the
benchmark all drive this loop; nothing about training lives anywhere else.

Per step: (1) draw a batch from the device-resident dataset, (2) ask the model
plugin for one training step, (3) add the returned loss tensors to on-device
accumulators. No ``.item()`` per step: the accumulators come to the host as
one small transfer every ``log_every_s`` (default 100 ms) or every
``log_every_steps`` steps. Sample grids, checkpoints and commands (pause,
resume, stop, checkpoint now, roll back) are handled between steps.
"""
from __future__ import annotations

import errno
import math
import os
import platform
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

import ganstudio
from . import events as ev
from . import finetune
from .checkpoints import candidates, is_disk_full, load_latest, save_checkpoint, set_aside
from .config import resolve_config
from .data import DatasetReport, DeviceImages, load_dataset
from .devices import DeviceChoice, pick_device
from .errors import CheckpointError, UserError
from .images import make_grid, save_png
from .model import GAN, ModelSpec
from .alarm import EngineMonitors, split_holdout
from .runs import RunFolder, RunLock, warning_tag


@dataclass
class EngineSettings:
    """How a run is driven (not what is trained: that is the model config)."""

    total_steps: int = 10_000
    log_every_s: float = 0.1
    log_every_steps: int = 0          # >0: also log every N steps (tests: exact lines)
    sample_every_s: float = 5.0
    sample_every_steps: int = 0
    checkpoint_every_s: float = 120.0
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 3
    n_samples: int = 64
    on_nan: str = "pause"             # "pause" (studio) or "stop" (CLI)
    device: str = "auto"
    precision: str = "auto"           # auto | fp32 | bf16
    # the collapse / imbalance alarm and KID / FID (ganstudio.core.alarm, .quality)
    monitors: bool = True             # False: neither runs, no images are held out
    alarm_every_s: float = 20.0
    alarm_every_steps: int = 0        # >0: every N steps instead of seconds
    quality_every_s: float = 120.0    # 0 and quality_every_steps 0: never
    quality_every_steps: int = 0
    quality_samples: int = 500
    quality_features: str = "auto"    # auto (Inception if on disk, else random) | inception | random


class _Commands:
    """Thread-safe mailbox checked by the engine between steps."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.paused = False
        self.stop = False
        self.checkpoint = False
        self.rollback: float | None = None

    def set(self, **flags: Any) -> None:
        with self.cond:
            for k, v in flags.items():
                setattr(self, k, v)
            self.cond.notify_all()


def _optimizers(model: Any) -> list[torch.optim.Optimizer]:
    found = []
    for value in vars(model).values():
        if isinstance(value, torch.optim.Optimizer):
            found.append(value)
    return found


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, and the RuntimeErrors other backends (MPS, ROCm) raise."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _lr_key(key: str) -> str | None:
    """'lr' -> '', 'lr_g' -> 'g', 'g_lr' -> 'g'; None for keys that are not learning rates."""
    if key == "lr":
        return ""
    if key.startswith("lr_"):
        return key[3:]
    if key.endswith("_lr"):
        return key[:-3]
    return None


def _describe_os_error(e: OSError) -> str:
    if is_disk_full(e):
        if e.errno == errno.EFBIG:
            return f"the file size limit was reached ({e.strerror or e})"
        return f"the disk is full ({e.strerror or e})"
    return str(e.strerror or e)


def scale_learning_rates(model: Any, factor: float) -> None:
    """Multiply every learning rate of the model (its hook, or its optimizers, and config)."""
    if hasattr(model, "scale_learning_rates"):
        model.scale_learning_rates(factor)
        return
    for opt in _optimizers(model):
        for group in opt.param_groups:
            group["lr"] = group["lr"] * factor


class Engine:
    """Drives one run. Create it, call :meth:`prepare` then :meth:`run` (same thread).

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
        self.run = RunFolder(run_dir)
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
        self.commands = _Commands()
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
        self.resumed_from: Path | None = None
        self.last_checkpoint: Path | None = None
        self._prepared = False
        self.holdout: torch.Tensor | None = None   # images D never sees (the overfitting check)
        self.monitors: EngineMonitors | None = None
        self._extra_values: dict[str, float] = {}  # alarm / quality values for the next line
        self._t_monitor: list[float] | None = None
        self._diverged = False  # NaN/Inf seen and not rolled back: never checkpoint these weights

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

    def _warn(self, message: str, kind: str = "warning") -> None:
        self.run.log(f"{message} {warning_tag(kind, self.step)}", "WARNING")
        self.emit(ev.Warning(message, self.step, kind))

    # -- preparation -------------------------------------------------------------------------
    def prepare(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Open or create the run folder, prepare the data, build the model and restore
        the latest checkpoint when resuming. Raises UserError subclasses for the user:
        a folder that cannot be written, a device out of memory while building, a run
        already being trained elsewhere."""
        try:
            self._prepare(progress)
        except UserError:
            raise
        except OSError as e:
            where = e.filename or self.run.path
            raise UserError(f"cannot write the run folder ({where}): "
                            f"{_describe_os_error(e)}") from None
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            if self.device and self.device.device.type == "cuda":
                torch.cuda.empty_cache()
            bs = int(self.config.get("batch_size", 0) or 0)
            hint = f" (or batch_size={max(1, bs // 2)})" if bs > 1 else ""
            raise UserError("the device ran out of memory while preparing the run; try a "
                            f"smaller model or resolution{hint}, or another device") from None

    def _one_channel_fits(self, report: DatasetReport) -> bool:
        field = self.spec.field("channels")
        return (bool(report.grayscale) and field is not None and "channels" not in self.overrides
                and int(self.config["channels"]) != 1 and 1 in (field.choices or [1]))

    def _prepare(self, progress: Callable[[int, int], None] | None) -> None:
        s = self.settings
        if self.run.path.is_dir():
            self.run.lock().release()  # fail early when another process trains this run
        existing = self.run.exists()
        info: dict[str, Any] | None = None
        if existing:
            info = self.run.read_info()
            if info["model_id"] != self.spec.id:
                raise UserError(f"run folder {self.run.path} holds a '{info['model_id']}' run, "
                                f"not '{self.spec.id}'")
            if not self.resume_requested and not self.restart_requested \
                    and self.run.has_history():
                raise UserError(f"run folder {self.run.path} already holds a run; "
                                "resume it (--resume), start it over (--restart; its history "
                                "is kept in a previous-* folder) or choose another folder")
        base = info["config"] if info else None
        source = None
        if self.init_from and not (self.resume_requested and existing):
            # a new run from another run's weights: its settings are the defaults here
            source = finetune.resolve(self.init_from, self.spec)
            base = source.config
        self.config = resolve_config(self.spec.schema, self.overrides, base=base)
        if self.data_folder is None and info and (info.get("dataset") or {}).get("folder"):
            self.data_folder = Path(info["dataset"]["folder"])

        self.device = pick_device(s.device, precision=s.precision)
        torch.manual_seed(int(self.config.get("seed", 0)))

        image_shape = None
        if self.spec.kind == GAN:
            res, ch = int(self.config["resolution"]), int(self.config["channels"])
            if self.preloaded is not None:
                images = self.preloaded
                self.report = DatasetReport("<in memory>", res, ch, self.config.get("fit", "crop"),
                                            used=int(images.shape[0]))
            else:
                if self.data_folder is None:
                    raise UserError("no image folder given (--data DIR)")
                images, self.report = load_dataset(self.data_folder, res, ch,
                                                   self.config.get("fit", "crop"),
                                                   cache_dir=self.cache_dir, progress=progress)
                if base is None and self._one_channel_fits(self.report):
                    # every image is greyscale and the user did not choose: 1 channel
                    images = images[:, :1].contiguous()
                    self.config["channels"] = self.report.channels = 1
                    self.chosen_from_data["channels"] = 1
            if s.monitors:
                images, self.holdout = split_holdout(images, int(self.config.get("seed", 0)))
            self.data = DeviceImages(images, self.device.device,
                                     flip=bool(self.config.get("flip", True)),
                                     seed=int(self.config.get("seed", 0)))
            image_shape = self.data.shape
        self.model = self.spec.factory(self.config, image_shape, self.device.device)
        if self.data is not None:
            self.model.attach_data(self.data)
        if source is not None:
            self.init_record = finetune.start_from(source, self.model, self.config)

        g = torch.Generator().manual_seed(int(self.config.get("seed", 0)) + 1)
        if self.spec.kind == GAN:
            self.fixed_noise = self.model.make_latents(s.n_samples, g)

        # Restore before run.json is rewritten: a refused checkpoint leaves the run as it was.
        if self.resume_requested and existing and not self.restart_requested:
            loaded, rejected = self._restore_latest()
            if loaded is None and self.run.has_history():
                why = "; ".join(reason for _p, reason in rejected[:3]) or "there is none"
                raise CheckpointError(
                    f"cannot resume {self.run.path}: no usable checkpoint ({why}). Nothing "
                    "was changed; to train this folder from step 0 start it over (--restart: "
                    "its history is kept in a previous-* folder)")
            if loaded is None:
                self._warn("no checkpoint yet; starting from step 0", "checkpoint")
            else:
                path = loaded
                self.resumed_from = path
                self.last_checkpoint = path
                self.run.log(f"resumed from {path.name} at step {self.step}")
        if self.restart_requested and existing:
            self.history_moved_to = self.run.set_history_aside()
            if self.history_moved_to is not None:
                self.run.log(f"started over; the earlier history is in "
                             f"{self.history_moved_to.name}/")

        run_info = {
            "model_id": self.spec.id, "model_name": self.spec.name, "kind": self.spec.kind,
            "plugin": self.spec.plugin, "plugin_version": self.plugin_version,
            "model_version": self.spec.version, "ganstudio_version": ganstudio.__version__,
            "config": self.config, "total_steps": int(s.total_steps),
            "device": self.device.name, "device_reason": self.device.reason,
            "dataset": self.report.to_dict() if self.report else None,
            "host": platform.node(),
        }
        if self.init_record is not None:
            run_info["init_from"] = self.init_record
        if existing and info is not None:
            run_info["created"] = info.get("created")
            self.run.write_info({**info, **run_info})
        else:
            self.run.create(run_info)
        self.run.log(f"model {self.spec.id} ({self.spec.plugin} {self.plugin_version}); "
                     f"device {self.device.name} ({self.device.reason})")
        if self.report is not None:
            self.run.log("dataset: " + self.report.summary())
            if self.chosen_from_data:
                chosen = ", ".join(f"{k}={v}" for k, v in self.chosen_from_data.items())
                self.run.log(f"chosen from the data (not set by the user): {chosen}")
            for skipped in self.report.skipped:
                self.run.log(f"skipped {skipped.path}: {skipped.reason}", "WARNING")
            for path, note in self.report.converted:
                self.run.log(f"converted {path}: {note}")
            for warning in self.report.warnings:
                self._warn(f"dataset: {warning}", "dataset")

        # Going back to a checkpoint, or starting over in a folder whose run never saved
        # one: metrics and grids of the lost steps go.
        self.run.truncate_metrics_after(self.step)
        self.run.prune_samples_after(self.step)
        self._prepared = True

    def _restore_latest(self) -> tuple[Path | None, list[tuple[Path, str]]]:
        """Restore the newest checkpoint that verifies, passes the content checks and
        restores; returns (its path or None, the newer ones refused and why).

        Refused files (damaged, crafted, another model's, a step beyond this run's
        records, malformed values) are set aside only once a good one is found: when
        none is, the folder is left exactly as it was. A checkpoint that does not fit
        the model stays an error for the user: the older ones would not fit either."""
        rejected: list[tuple[Path, str]] = []
        for path, state, problem in candidates(self.run.checkpoints_dir, "cpu",
                                               model_id=self.spec.id,
                                               max_step=self.run.history_bound()):
            if state is None:
                rejected.append((path, problem))
                continue
            try:
                self._restore(state)
            except CheckpointError:
                raise
            except Exception as e:  # noqa: BLE001 - malformed values in a verified file
                rejected.append((path, f"checkpoint {path} was refused: it holds malformed "
                                       f"values ({e.__class__.__name__}: {e})"))
                continue
            for bad, why in rejected:
                self._skip_checkpoint(bad, why)
            return path, rejected
        return None, rejected

    def _skip_checkpoint(self, path: Path, why: str) -> None:
        """A checkpoint failed to verify or load: say so, and set it aside for good."""
        moved = set_aside(path, "refused" if "refused" in why else "damaged")
        where = f" (moved to {moved.name})" if moved else ""
        self._warn(f"{why}{where}; using the previous checkpoint", "checkpoint")

    # -- checkpoints -------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device and self.device.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device.device)
        return {
            "format": 1, "model_id": self.spec.id, "plugin": self.spec.plugin,
            "plugin_version": self.plugin_version, "model_version": self.spec.version,
            "ganstudio_version": ganstudio.__version__,
            "step": self.step, "images_seen": self.images_seen, "elapsed": self.elapsed,
            "config": self.config, "model": self.model.state_dict(),
            "data": self.data.state_dict() if self.data is not None else {},
            "fixed_noise": self.fixed_noise.cpu() if self.fixed_noise is not None else None,
            "rng": rng,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("model_id") != self.spec.id:
            raise CheckpointError(f"checkpoint belongs to model '{state.get('model_id')}', "
                                  f"not '{self.spec.id}'")
        try:
            self.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            saved = state.get("config") or {}
            changed = sorted(k for k in self.config if k in saved and saved[k] != self.config[k])
            hint = (f"; changed settings ({', '.join(changed)}) do not match the checkpoint, "
                    "resume without changing them" if changed else "")
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"the checkpoint does not fit model '{self.spec.id}'{hint} "
                                  f"({first})") from None
        self._apply_lr_changes(state.get("config") or {})
        if self.data is not None:
            self.data.load_state_dict(state.get("data", {}))
        self.step = int(state["step"])
        self.images_seen = int(state.get("images_seen", 0))
        self.elapsed = float(state.get("elapsed", 0.0))
        if state.get("fixed_noise") is not None:
            self.fixed_noise = state["fixed_noise"].to(self.device.device)
        rng = state.get("rng", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"].to(torch.uint8).cpu())
        if "cuda" in rng and self.device.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].to(torch.uint8).cpu(), self.device.device)

    def _apply_lr_changes(self, saved: dict[str, Any]) -> None:
        """Optimizer states restore the checkpoint's learning rates; when the config now
        asks for different ones (``--resume --set lr_g=...``, or a roll back to a
        checkpoint from before an earlier one), scale the optimizers to match."""
        ratios: dict[str, float] = {}
        for key, value in self.config.items():
            old = saved.get(key)
            if (_lr_key(key) is not None and isinstance(value, float)
                    and isinstance(old, (int, float)) and not isinstance(old, bool) and old > 0
                    and not math.isclose(value, old, rel_tol=1e-9)):
                ratios[key] = value / float(old)
        if not ratios:
            return
        factors = list(ratios.values())
        if all(math.isclose(f, factors[0], rel_tol=1e-9) for f in factors):
            scale_learning_rates(self.model, factors[0])
        else:
            for key, factor in ratios.items():
                opt = getattr(self.model, f"opt_{_lr_key(key)}", None)
                if not isinstance(opt, torch.optim.Optimizer):
                    self._warn(f"cannot tell which optimizer '{key}' belongs to; the "
                               "checkpoint's learning rates were kept (change all learning "
                               "rates by the same factor to apply it)", "config")
                    return
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * factor
        changes = ", ".join(f"{k} {saved[k]:g} -> {self.config[k]:g}" for k in ratios)
        self.run.log(f"learning rates changed on restore: {changes}")

    def write_checkpoint(self) -> Path | None:
        """Save now; on disk errors the run is told and older checkpoints stay.

        Returns None (and warns) while the weights are diverged: a NaN checkpoint
        would become the newest one and poison every later resume."""
        if self._diverged:
            self._warn("no checkpoint written: the losses diverged (NaN/Inf); roll back to "
                       "the last good checkpoint first", "checkpoint")
            return None
        try:
            path = save_checkpoint(self._state(), self.run.checkpoints_dir, self.step,
                                   keep_last=self.settings.keep_checkpoints)
        except OSError as e:
            raise _DiskError(f"could not write a checkpoint to {self.run.checkpoints_dir}: "
                             f"{_describe_os_error(e)}; the run stopped and the older "
                             "checkpoints are intact") from e
        self.last_checkpoint = path
        self.run.log(f"checkpoint {path.name}")
        self.emit(ev.CheckpointWritten(self.step, str(path)))
        return path

    # -- samples -----------------------------------------------------------------------------
    @torch.no_grad()
    def render_samples(self) -> ev.Samples:
        where = "sample" if self.spec.kind == GAN else "preview"
        try:
            images = (self.model.sample(self.fixed_noise) if self.spec.kind == GAN
                      else self.model.preview())
            if not isinstance(images, torch.Tensor) or images.dim() != 4:
                shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
                raise TypeError(f"{where}() must return a tensor (N, C, H, W) in [-1, 1], got {shape}")
        except Exception as e:
            if is_out_of_memory(e):
                raise
            raise _PluginFailure(where, traceback.format_exc()) from e
        grid = make_grid(images.float(), nrow=None if images.shape[0] > 1 else 1)
        path = None
        try:
            path = str(save_png(grid, self.run.sample_path(self.step), within=self.run.path))
        except OSError as e:
            self.run.log(f"could not save the sample grid: {e}", "WARNING")
        event = ev.Samples(self.step, grid, path)
        self.emit(event)
        return event

    # -- the loop ----------------------------------------------------------------------------
    def run_loop(self) -> ev.Event:
        """Train until ``total_steps`` or a stop; returns the Finished or Failed event.

        Holds the run folder's writer lock while training: a second process or window
        trying to train the same run gets a clear Failed event instead of two writers
        interleaving checkpoints."""
        if not self._prepared:
            self.prepare()
        try:
            lock: RunLock | None = self.run.lock()
        except UserError as e:
            return self._fail(str(e), kind="user")
        try:
            return self._run_loop()
        finally:
            lock.release()

    def _run_loop(self) -> ev.Event:
        s = self.settings
        dev = self.device
        self.emit(ev.Started(str(self.run.path), self.spec.id, dev.name, dev.reason,
                             self.step, s.total_steps, dict(self.config),
                             resumed=self.resumed_from is not None, precision=dev.precision))
        acc: dict[str, torch.Tensor] = {}
        n_acc = 0
        imgs_since = 0
        now = time.perf_counter()
        t_log = t_sample = t_ckpt = t_run = now
        last_sample_step = -1
        last_ckpt_step = self.step
        autocast = (torch.autocast(dev.device.type, dtype=dev.autocast_dtype)
                    if dev.autocast_dtype is not None else None)

        def flush() -> bool:
            """Bring the accumulated means to the host (one transfer); False if not finite."""
            nonlocal acc, n_acc, imgs_since, t_log
            if n_acc == 0:
                return True
            names = list(acc)
            means = (torch.stack([acc[k] for k in names]) / n_acc).tolist() if names else []
            t = time.perf_counter()
            ips = imgs_since / max(t - t_log, 1e-9)
            values = dict(zip(names, means))
            values.update(self.model.status())
            values.update(self._extra_values)
            self._extra_values = {}
            finite = all(math.isfinite(v) for v in means)
            if finite:
                self._diverged = False  # finite again (after "resume anyway"): saving is safe
            try:
                self.run.append_metrics([{"step": self.step, "time": round(self.elapsed, 3),
                                          **values, "img_per_s": round(ips, 2)}])
            except OSError as e:
                raise _DiskError(f"could not write {self.run.metrics_path}: "
                                 f"{_describe_os_error(e)}; the run stopped") from e
            self.emit(ev.Metrics(self.step, self.elapsed, values, ips, s.total_steps))
            acc, n_acc, imgs_since, t_log = {}, 0, 0, t
            return finite

        try:
            if self.step == 0 or not self.run.list_samples():
                self.render_samples()
                last_sample_step = self.step
            while self.step < s.total_steps:
                # -- commands between steps ---------------------------------------------------
                if self.commands.checkpoint:
                    self.commands.set(checkpoint=False)
                    if not flush():
                        if self._on_nan():
                            continue
                        return self._fail_nan()
                    self.write_checkpoint()
                    last_ckpt_step, t_ckpt = self.step, time.perf_counter()
                if self.commands.stop:
                    break
                if self.commands.rollback is not None:
                    self._do_rollback()
                    acc, n_acc = {}, 0
                if self.commands.paused:
                    flush()
                    paused_at = time.perf_counter()
                    if not self._wait_while_paused():
                        break
                    pause = time.perf_counter() - paused_at
                    t_log += pause; t_sample += pause; t_ckpt += pause; t_run += pause
                    continue

                # (1) a batch, already on the device (a model that keeps its own copy of the
                #     data at several resolutions sets ``draws_own_batches`` and gets None)
                want = self.model.batch_size if self.data is not None else 1
                own = bool(getattr(self.model, "draws_own_batches", False))
                real = self.data.batch(want) if self.data is not None and not own else None
                # (2) one step of the model: D then G, inside the plugin
                oom = False
                try:
                    if autocast is not None:
                        with autocast:
                            out = self.model.train_step(real)
                    else:
                        out = self.model.train_step(real)
                except Exception as e:
                    if not is_out_of_memory(e):
                        raise _PluginFailure("train_step", traceback.format_exc()) from e
                    oom = True
                if oom:  # outside the except block: its traceback no longer pins tensors
                    real = None
                    return self._fail_oom()
                if not isinstance(out, dict) or not all(
                        isinstance(v, torch.Tensor) and v.numel() == 1 for v in out.values()):
                    try:
                        raise TypeError(
                            "train_step must return a dict of name -> scalar tensor (detached, "
                            f"no .item()), got {_describe_step_output(out)}")
                    except TypeError as e:
                        raise _PluginFailure("train_step", traceback.format_exc()) from e
                # (3) accumulate on the device; no host sync here
                for k, v in out.items():
                    v = v.detach().float()
                    acc[k] = acc[k] + v if k in acc else v
                n_acc += 1
                bs = real.shape[0] if real is not None else want
                self.step += 1
                self.images_seen += bs
                imgs_since += bs
                now = time.perf_counter()
                self.elapsed += now - t_run
                t_run = now

                alarm_due, quality_due = self._monitors_due(now)
                if alarm_due or quality_due:
                    self._run_monitors(alarm_due, quality_due)
                due_log = (now - t_log >= s.log_every_s) or (
                    s.log_every_steps and self.step % s.log_every_steps == 0) or bool(
                    self._extra_values)
                if due_log or self.step >= s.total_steps:
                    if not flush():
                        if self._on_nan():
                            continue
                        return self._fail_nan()
                if (s.sample_every_steps and self.step % s.sample_every_steps == 0) or (
                        not s.sample_every_steps and now - t_sample >= s.sample_every_s):
                    self.render_samples()
                    last_sample_step, t_sample = self.step, time.perf_counter()
                if (s.checkpoint_every_steps and self.step % s.checkpoint_every_steps == 0) or (
                        s.checkpoint_every_s > 0 and now - t_ckpt >= s.checkpoint_every_s):
                    if not flush():  # never save a checkpoint of diverged weights
                        if self._on_nan():
                            continue
                        return self._fail_nan()
                    self.write_checkpoint()
                    last_ckpt_step, t_ckpt = self.step, time.perf_counter()

            # -- the end: completed or stopped -------------------------------------------------
            finite = flush()
            if last_sample_step != self.step:
                self.render_samples()
            ckpt = None
            if finite and (last_ckpt_step != self.step or self.last_checkpoint is None):
                ckpt = self.write_checkpoint() or self.last_checkpoint
            elif self.last_checkpoint is not None:
                ckpt = self.last_checkpoint
            if not finite:
                self._warn(f"losses were NaN or infinite when the run stopped at step "
                           f"{self.step}; no checkpoint was written for it", "nan")
            reason = "completed" if self.step >= s.total_steps else "stopped"
            self.run.log(f"{reason} at step {self.step}")
            done = ev.Finished(self.step, reason, str(ckpt) if ckpt else None)
            self.emit(done)
            return done
        except _DiskError as e:
            return self._fail(str(e), kind="disk")
        except _PluginFailure as e:
            cause = e.__cause__
            return self._fail(f"{cause.__class__.__name__} in {e.where}: {cause}"
                              + self._precision_hint(cause), kind="plugin", tb=e.tb)
        except UserError as e:
            return self._fail(str(e), kind="user")
        except Exception as e:
            if is_out_of_memory(e):
                oom = True
            elif isinstance(e, OSError) and is_disk_full(e):
                return self._fail(f"{_describe_os_error(e)} ({e.filename or self.run.path}); "
                                  "the run stopped and the older checkpoints are intact",
                                  kind="disk")
            else:
                tb = traceback.format_exc()
                if self._raised_in_plugin(e):
                    return self._fail(f"{e.__class__.__name__}: {e}", kind="plugin", tb=tb)
                return self._fail(f"internal error: {e.__class__.__name__}: {e}",
                                  kind="internal", tb=tb)
        # only an out-of-memory error gets here, after its traceback was released
        return self._fail_oom()

    # -- the balance alarm and quality measures ----------------------------------------------
    def _monitors_due(self, now: float) -> tuple[bool, bool]:
        s = self.settings
        if not s.monitors or self.data is None or self.spec.kind != GAN:
            return False, False
        if self._t_monitor is None:
            self._t_monitor = [now, now]

        def due(every_steps: int, every_s: float, i: int) -> bool:
            if every_steps > 0:
                return self.step % every_steps == 0
            return every_s > 0 and now - self._t_monitor[i] >= every_s
        return (due(s.alarm_every_steps, s.alarm_every_s, 0),
                due(s.quality_every_steps, s.quality_every_s, 1))

    def _run_monitors(self, alarm: bool, quality: bool) -> None:
        """Alarm and KID/FID values go into the next metrics line; warnings become events.
        A failure here is logged and turns the measures off; it never stops training."""
        s = self.settings
        if self.monitors is None:
            self.monitors = EngineMonitors(
                self.data, self.holdout, device=self.device.device,
                quality_samples=s.quality_samples, quality_features=s.quality_features,
                seed=int(self.config.get("seed", 0)), note=self.run.log)
        try:
            if alarm:
                values, warnings = self.monitors.check_alarm(self.model, self.fixed_noise,
                                                             self.step)
                self._extra_values.update(values)
                for kind, message in warnings:
                    self._warn(f"step {self.step}: {message}", kind)
            if quality:
                self._extra_values.update(self.monitors.measure_quality(self.model))
        except torch.OutOfMemoryError:
            raise
        except Exception:
            s.monitors = False
            self.run.log("the balance alarm / quality measures failed and are off for this "
                         f"run:\n{traceback.format_exc()}", "WARNING")
        t = time.perf_counter()                 # time spent measuring is not an interval
        if self._t_monitor is not None:
            if alarm:
                self._t_monitor[0] = t
            if quality:
                self._t_monitor[1] = t

    def _wait_while_paused(self) -> bool:
        """Block until resumed (True) or stopped (False); serves checkpoint requests."""
        self.emit(ev.Paused(self.step, getattr(self, "_pause_reason", "user")))
        self.run.log(f"paused at step {self.step}")
        self._pause_reason = "user"
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

    def _on_nan(self) -> bool:
        """Non-finite losses: pause (studio) and let the user roll back, or stop (CLI)."""
        self._diverged = True
        msg = (f"losses became NaN or infinite at step {self.step}. "
               + (f"The last good checkpoint is {self.last_checkpoint.name}; roll back to it "
                  "with a lower learning rate." if self.last_checkpoint else
                  "No checkpoint was written yet; roll back to start again from step 0 "
                  "with a lower learning rate."))
        self._warn(msg, "nan")
        if self.settings.on_nan == "pause":
            self._pause_reason = "nan"
            self.commands.set(paused=True)
            return True
        return False

    def _do_rollback(self) -> None:
        factor = self.commands.rollback or 0.5
        self.commands.set(rollback=None)
        loaded = load_latest(self.run.checkpoints_dir, map_location="cpu",
                             on_skip=self._skip_checkpoint, model_id=self.spec.id,
                             max_step=self.step)
        for key, value in list(self.config.items()):
            if isinstance(value, float) and _lr_key(key) is not None:
                self.config[key] = value * factor
        if loaded is None:
            # Diverged weights cannot be saved by a lower learning rate: build the model
            # afresh (the new config carries the lower rates) and start again.
            self._warn("no checkpoint to roll back to; starting again from step 0 with lower "
                       "learning rates", "nan")
            self.model = self.spec.factory(self.config, self.data.shape if self.data else None,
                                           self.device.device)
            if self.data is not None:
                self.model.attach_data(self.data)
            self.step, self.images_seen = 0, 0
        else:
            # the restore matches the optimizers to the (now lower) configured rates
            self._restore(loaded[1])
        if not any(_lr_key(k) is not None for k in self.config):
            scale_learning_rates(self.model, factor)  # rates the config does not name
        self._diverged = False
        self.run.truncate_metrics_after(self.step)
        self.run.prune_samples_after(self.step)
        try:
            self.run.update_info(config=self.config)
        except UserError:
            pass
        self.run.log(f"rolled back to step {self.step}; learning rates x{factor}")
        self.emit(ev.Resumed(self.step))

    def _raised_in_plugin(self, error: BaseException) -> bool:
        """Did ``error`` come from the model plugin's own code (its files in the traceback)?"""
        module = sys.modules.get(getattr(self.spec.factory, "__module__", "") or "")
        top = sys.modules.get((getattr(module, "__name__", "") or "").split(".")[0])
        files = set()
        for mod in (module, top):
            f = getattr(mod, "__file__", None)
            if f:
                files.add(os.path.dirname(f) if os.path.basename(f) == "__init__.py" else f)
        if not files:
            return False
        for frame in traceback.extract_tb(error.__traceback__):
            for f in files:
                if frame.filename == f or frame.filename.startswith(f.rstrip(os.sep) + os.sep):
                    return True
        return False

    def _fail_nan(self) -> ev.Failed:
        """Non-finite losses with ``on_nan="stop"`` (the CLI): fail with how to go on."""
        lrs = {k: v for k, v in self.config.items() if _lr_key(k) is not None
               and isinstance(v, float)}
        suggestion = " ".join(f"{k}={v / 2:g}" for k, v in lrs.items())
        where = (f"the last good checkpoint is {self.last_checkpoint.name}"
                 if self.last_checkpoint else "no checkpoint was written yet")
        msg = f"losses became NaN or infinite at step {self.step}; {where}"
        if suggestion:
            msg += f"; resume with lower learning rates ({suggestion})"
        return self._fail(msg, kind="nan", suggestion=suggestion)

    def _fail_oom(self) -> ev.Failed:
        bs = int(self.config.get("batch_size", 0) or 0)
        suggestion = f"batch_size={max(1, bs // 2)}" if bs > 1 else ""
        # Free what the failed step held (gradients, activations) so the app stays usable.
        if self.model is not None and hasattr(self.model, "__dict__"):
            for opt in _optimizers(self.model):
                opt.zero_grad(set_to_none=True)
        if self.device and self.device.device.type == "cuda":
            torch.cuda.empty_cache()
        msg = f"the device ran out of memory at step {self.step} (batch size {bs})"
        if suggestion:
            msg += f"; try a smaller batch ({suggestion}) and resume"
        return self._fail(msg, kind="oom", suggestion=suggestion)

    def _precision_hint(self, error: BaseException | None) -> str:
        """What to do when a plugin fails on a bf16 tensor under the engine's autocast."""
        dev = self.device
        if dev is None or dev.autocast_dtype is None or error is None:
            return ""
        text = str(error)
        if "BFloat16" not in text and "bfloat16" not in text:
            return ""
        return (" (the run trained in bf16 autocast, which this plugin may not support: "
                "resume with --precision fp32, or Precision fp32 in the studio)")

    def _fail(self, message: str, *, kind: str, tb: str = "", suggestion: str = "") -> ev.Failed:
        plugin = (self.spec.plugin or self.spec.id) if kind == "plugin" else ""
        if plugin:
            message = f"plugin '{plugin}' ({self.spec.id}) failed at step {self.step}: {message}"
        self.run.log(message + (f"\n{tb}" if tb else ""), "ERROR")
        failed = ev.Failed(self.step, message, tb, plugin, suggestion)
        self.emit(failed)
        return failed


class _DiskError(Exception):
    pass


def _describe_step_output(out: Any) -> str:
    if not isinstance(out, dict):
        return type(out).__name__
    for k, v in out.items():
        if not isinstance(v, torch.Tensor):
            return f"{type(v).__name__} for {k!r}"
        if v.numel() != 1:
            return f"a tensor of shape {tuple(v.shape)} for {k!r}"
    return "dict"


class _PluginFailure(Exception):
    """The plugin's train_step raised; carries where and the formatted traceback."""

    def __init__(self, where: str, tb: str):
        super().__init__(where)
        self.where = where
        self.tb = tb


def train(spec: ModelSpec, run_dir: str | Path, **kwargs: Any) -> ev.Event:
    """Convenience: build an Engine, prepare, run; returns the final event."""
    engine = Engine(spec, run_dir, **kwargs)
    engine.prepare()
    return engine.run_loop()
