"""What a checkpoint holds and how a run comes back from one.

A checkpoint is the model's state (networks, optimizers, counters), the data
sampler's state, the fixed noise of the sample grid, the step counters, the
config it was trained with, and every random stream (torch's, CUDA's,
Python's ``random`` and NumPy's global generator: see :mod:`.randomness`), so a
resumed run continues exactly as the uninterrupted one would.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ganstudio
from .. import events as ev
from . import ranks as seams
from ..checkpoints import candidates, checkpoint_name, save_checkpoint, set_aside
from ..errors import CheckpointError
from . import learning_rates as lrs
from . import randomness
from .failures import DiskError, describe_os_error

#: The engine these functions work for (:class:`.loop.Engine`; not imported here, the
#: loop imports this module).
Engine = Any


class Checkpoints:
    """Writes the engine's checkpoints and restores the engine from them."""

    def __init__(self, engine: Engine):
        self.e = engine

    # -- writing ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        e = self.e
        return {
            "format": 1, "model_id": e.spec.id, "plugin": e.spec.plugin,
            "plugin_version": e.plugin_version, "model_version": e.spec.version,
            "ganstudio_version": ganstudio.__version__,
            "step": e.step, "images_seen": e.images_seen, "elapsed": e.elapsed,
            "config": e.config, "model": e.model.state_dict(),
            "data": e.data.state_dict() if e.data is not None else {},
            "fixed_noise": e.fixed_noise.cpu() if e.fixed_noise is not None else None,
            "rng": randomness.capture(e.device.device if e.device else None),
        }

    def write(self) -> Path | None:
        """Save now; on disk errors the run is told and older checkpoints stay.

        Returns None (and warns) while the weights are diverged: a NaN checkpoint
        would become the newest one and poison every later resume."""
        e = self.e
        if e.failures.diverged:
            e.warn("no checkpoint written: the losses diverged (NaN/Inf)", "checkpoint",
                   action=ev.ROLLBACK)
            return None
        if e.ranks is not None:   # every rank: compare weights (also a barrier) ...
            seams.check_in_step(e)
            if not e.rank_info.is_writer:   # ... and rank 0 alone writes
                e.last_checkpoint = e.run.checkpoints_dir / checkpoint_name(e.step)
                return None
        try:
            path = save_checkpoint(self.state(), e.run.checkpoints_dir, e.step,
                                   keep_last=e.settings.keep_checkpoints)
        except OSError as err:
            raise DiskError(f"could not write a checkpoint to {e.run.checkpoints_dir}: "
                            f"{describe_os_error(err)}; the run stopped and the older "
                            "checkpoints are intact") from err
        e.last_checkpoint = path
        e.run.log(f"checkpoint {path.name}")
        e.emit(ev.CheckpointWritten(e.step, str(path)))
        return path

    # -- reading ------------------------------------------------------------------------------
    def restore_latest(self) -> tuple[Path | None, list[tuple[Path, str]]]:
        """Restore the newest checkpoint that verifies, passes the content checks and
        restores; returns (its path or None, the newer ones refused and why).

        Refused files (damaged, crafted, another model's, a step beyond this run's
        records, malformed values) are set aside only once a good one is found: when
        none is, the folder is left exactly as it was. A checkpoint that does not fit
        the model stays an error for the user: the older ones would not fit either."""
        e = self.e
        rejected: list[tuple[Path, str]] = []
        for path, state, problem in candidates(e.run.checkpoints_dir, "cpu",
                                               model_id=e.spec.id,
                                               max_step=e.run.history_bound()):
            if state is None:
                rejected.append((path, problem))
                continue
            try:
                self.restore(state)
            except CheckpointError:
                raise
            except Exception as err:  # noqa: BLE001 - malformed values in a verified file
                rejected.append((path, f"checkpoint {path} was refused: it holds malformed "
                                       f"values ({err.__class__.__name__}: {err})"))
                continue
            for bad, why in rejected:
                self.skip(bad, why)
            return path, rejected
        return None, rejected

    def skip(self, path: Path, why: str) -> None:
        """A checkpoint failed to verify or load: say so, and set it aside for good."""
        moved = set_aside(path, "refused" if "refused" in why else "damaged")
        where = f" (moved to {moved.name})" if moved else ""
        self.e.warn(f"{why}{where}; using the previous checkpoint", "checkpoint")

    def restore(self, state: dict[str, Any]) -> None:
        e = self.e
        if state.get("model_id") != e.spec.id:
            raise CheckpointError(f"checkpoint belongs to model '{state.get('model_id')}', "
                                  f"not '{e.spec.id}'")
        try:
            e.model.load_state_dict(state["model"])
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            saved = state.get("config") or {}
            changed = sorted(k for k in e.config if k in saved and saved[k] != e.config[k])
            hint = (f"; changed settings ({', '.join(changed)}) do not match the checkpoint, "
                    "resume without changing them" if changed else "")
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"the checkpoint does not fit model '{e.spec.id}'{hint} "
                                  f"({first})") from None
        self.reapply_learning_rates(state.get("config") or {})
        if e.data is not None:
            e.data.load_state_dict(state.get("data", {}))
        e.step = int(state["step"])
        e.images_seen = int(state.get("images_seen", 0))
        e.elapsed = float(state.get("elapsed", 0.0))
        if state.get("fixed_noise") is not None:
            e.fixed_noise = state["fixed_noise"].to(e.device.device)
        randomness.restore(state.get("rng", {}), e.device.device)

    def reapply_learning_rates(self, saved: dict[str, Any]) -> None:
        """Optimizer states bring back the checkpoint's learning rates; every declared
        learning-rate setting that now differs (``--resume --set ...``, a roll back)
        scales the optimizers it sets by new / old."""
        e = self.e
        ratios = lrs.changed_ratios(e.spec, saved, e.config)
        if not ratios:
            return
        opts = lrs.optimizers_of(e.model)
        if lrs.ambiguous(e.spec, ratios):
            e.warn(f"the learning rates {', '.join(sorted(ratios))} changed by different "
                   "factors, but the model does not declare which optimizer each one sets; "
                   "the checkpoint's rates were kept", "config")
            return
        missing = lrs.unknown_targets(e.spec, list(opts))
        if not opts or missing:
            e.warn(f"the learning rates {', '.join(sorted(ratios))} changed, but the model "
                   f"declares {'no optimizers' if not opts else 'no optimizer ' + ', '.join(missing)}"
                   "; the checkpoint's rates were kept", "config")
            return
        lrs.scale(opts, lrs.factors_per_optimizer(e.spec, ratios, list(opts)))
        changes = ", ".join(f"{k} {saved[k]:g} -> {e.config[k]:g}" for k in ratios)
        e.run.log(f"learning rates changed on restore: {changes}")
