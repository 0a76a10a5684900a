"""How a run fails, as data: each Failed event carries a ``kind`` and a structured
suggestion (settings to change, run options, an action); the CLI and the studio
word it. Non-finite losses are checked in one place (:meth:`Failures.checked_flush`).

Kinds: ``out_of_memory``, ``nan``, ``precision`` (a plugin that breaks on bf16
under the engine's autocast), ``plugin_error``, ``disk_full``, ``user_error``,
``internal``.
"""
from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Any

import torch

from .. import events as ev
from ..checkpoints import is_disk_full
from . import learning_rates as lrs

#: The engine these functions work for (:class:`.loop.Engine`; not imported here, the
#: loop imports this module).
Engine = Any

#: returned by a check when the run paused (studio) and the loop should go round again
AGAIN = "again"


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, and the RuntimeErrors other backends (MPS, ROCm) raise."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def describe_os_error(e: OSError) -> str:
    if is_disk_full(e):
        if e.errno == errno.EFBIG:
            return f"the file size limit was reached ({e.strerror or e})"
        return f"the disk is full ({e.strerror or e})"
    return str(e.strerror or e)


class DiskError(Exception):
    """Writing the run folder failed; the message says what and where."""


class PluginFailure(Exception):
    """The plugin's code raised; carries where and the formatted traceback."""

    def __init__(self, where: str, tb: str):
        super().__init__(where)
        self.where = where
        self.tb = tb


def describe_step_output(out: Any) -> str:
    if not isinstance(out, dict):
        return type(out).__name__
    for k, v in out.items():
        if not isinstance(v, torch.Tensor):
            return f"{type(v).__name__} for {k!r}"
        if v.numel() != 1:
            return f"a tensor of shape {tuple(v.shape)} for {k!r}"
    return "dict"


def raised_in_plugin(spec: Any, error: BaseException) -> bool:
    """Did ``error`` come from the model plugin's own code (its files in the traceback)?"""
    module = sys.modules.get(getattr(spec.factory, "__module__", "") or "")
    top = sys.modules.get((getattr(module, "__name__", "") or "").split(".")[0])
    files = set()
    for mod in (module, top):
        f = getattr(mod, "__file__", None)
        if f:
            files.add(os.path.dirname(f) if os.path.basename(f) == "__init__.py" else f)
    for frame in traceback.extract_tb(error.__traceback__) if files else []:
        for f in files:
            if frame.filename == f or frame.filename.startswith(f.rstrip(os.sep) + os.sep):
                return True
    return False


class Failures:
    """The engine's failure handling: NaN, out of memory, plugin errors, disk errors."""

    def __init__(self, engine: Engine):
        self.e = engine
        self.diverged = False     # NaN/Inf seen and not rolled back: never checkpoint these

    # -- non-finite losses: the one check -----------------------------------------------------
    def checked_flush(self) -> None | str | ev.Failed:
        """Log the pending metrics; None when finite, else pause (:data:`AGAIN`) or fail."""
        if self.e.flush_metrics():
            return None
        self.diverged = True
        e = self.e
        where = (f"the last good checkpoint is {e.last_checkpoint.name}" if e.last_checkpoint
                 else "no checkpoint was written yet")
        message = f"losses became NaN or infinite at step {e.step}; {where}"
        lower = lrs.lowered_settings(e.spec, e.config, 0.5)
        if e.settings.on_nan == "pause":
            e.warn(message, ev.NAN, settings=lower, action=ev.ROLLBACK)
            e.pause_reason = "nan"
            e.commands.set(paused=True)
            return AGAIN
        return self.fail(message, kind=ev.NAN, settings=lower,
                         action=ev.RESUME if e.last_checkpoint else ev.RESTART)

    # -- out of memory --------------------------------------------------------------------------
    def out_of_memory(self) -> ev.Failed:
        e = self.e
        bs = int(e.config.get("batch_size", 0) or 0)
        settings = {"batch_size": max(1, bs // 2)} if bs > 1 else {}
        # Free what the failed step held (gradients, activations) so the app stays usable.
        if e.model is not None:
            for opt in lrs.optimizers_of(e.model).values():
                opt.zero_grad(set_to_none=True)
        if e.device and e.device.device.type == "cuda":
            torch.cuda.empty_cache()
        return self.fail(f"the device ran out of memory at step {e.step} (batch size {bs})",
                         kind=ev.OUT_OF_MEMORY, settings=settings, action=ev.RESUME)

    # -- any exception the loop let through -----------------------------------------------------
    def from_exception(self, error: BaseException) -> ev.Failed | None:
        """The Failed event for ``error``; None for out of memory (the caller handles it
        outside the except block, so the traceback no longer pins the step's tensors)."""
        from ..distributed import DistributedError
        from ..errors import UserError

        if isinstance(error, DiskError):
            return self.fail(str(error), kind=ev.DISK_FULL)
        if isinstance(error, DistributedError):
            return self.fail(f"{error}; every rank stops; the run can be resumed from its "
                             "last checkpoint", kind=ev.DISTRIBUTED, action=ev.RESUME)
        if isinstance(error, PluginFailure):
            cause = error.__cause__
            text = f"{cause.__class__.__name__} in {error.where}: {cause}"
            if self._is_precision_problem(cause):
                return self.fail(text + " (the run trained in bf16 autocast, which this "
                                 "plugin may not support)", kind=ev.PRECISION, tb=error.tb,
                                 run_options={"precision": "fp32"}, action=ev.RESUME)
            return self.fail(text, kind=ev.PLUGIN_ERROR, tb=error.tb)
        if isinstance(error, UserError):
            return self.fail(str(error), kind=ev.USER_ERROR)
        if is_out_of_memory(error):
            return None
        if isinstance(error, OSError) and is_disk_full(error):
            return self.fail(f"{describe_os_error(error)} ({error.filename or self.e.run.path}); "
                             "the run stopped and the older checkpoints are intact",
                             kind=ev.DISK_FULL)
        tb = traceback.format_exc()
        if raised_in_plugin(self.e.spec, error):
            return self.fail(f"{error.__class__.__name__}: {error}", kind=ev.PLUGIN_ERROR, tb=tb)
        return self.fail(f"internal error: {error.__class__.__name__}: {error}",
                         kind=ev.INTERNAL, tb=tb)

    def _is_precision_problem(self, error: BaseException | None) -> bool:
        dev = self.e.device
        if dev is None or dev.autocast_dtype is None or error is None:
            return False
        return "BFloat16" in str(error) or "bfloat16" in str(error)

    def fail(self, message: str, *, kind: str, tb: str = "", settings: dict | None = None,
             run_options: dict | None = None, action: str = "") -> ev.Failed:
        e = self.e
        plugin = (e.spec.plugin or e.spec.id) if kind in (ev.PLUGIN_ERROR, ev.PRECISION) else ""
        if plugin:
            message = f"plugin '{plugin}' ({e.spec.id}) failed at step {e.step}: {message}"
        e.run.log(message + (f"\n{tb}" if tb else ""), "ERROR")
        failed = ev.Failed(e.step, message, tb, plugin, kind, dict(settings or {}),
                           dict(run_options or {}), action)
        e.emit(failed)
        return failed

    # -- roll back after NaN --------------------------------------------------------------------
    def rollback(self, factor: float) -> None:
        """Back to the last good checkpoint with the learning rates scaled by ``factor``
        (from step 0 with a fresh model when there is none)."""
        from ..checkpoints import load_latest

        e = self.e
        loaded = load_latest(e.run.checkpoints_dir, map_location="cpu",
                             on_skip=e.checkpoints.skip, model_id=e.spec.id, max_step=e.step)
        lowered = lrs.lowered_settings(e.spec, e.config, factor)
        e.config.update(lowered)
        if loaded is None:
            # Diverged weights cannot be saved by a lower learning rate: build the model
            # afresh (the new config carries the lower rates) and start again.
            e.warn("no checkpoint to roll back to; starting again from step 0",
                   "rollback", settings=lowered, action=ev.RESTART)
            e.build_model()
            e.step, e.images_seen = 0, 0
        else:
            e.checkpoints.restore(loaded[1])  # reapplies the changed learning-rate settings
        if not lowered:  # the spec declares no learning-rate setting: scale the optimizers
            opts = lrs.optimizers_of(e.model)
            lrs.scale(opts, {name: factor for name in opts})
            if not opts:
                e.warn("the model declares no optimizers, so its learning rates could not be "
                       "lowered", "rollback")
        self.diverged = False
        e.run.truncate_metrics_after(e.step)
        e.run.prune_samples_after(e.step)
        try:
            e.run.update_info(config=e.config)
        except Exception:  # noqa: BLE001 - the roll back itself has happened
            pass
        e.run.log(f"rolled back to step {e.step}; learning rates x{factor}")
        e.emit(ev.Resumed(e.step))
