"""Preparing a run, in the order that keeps a run folder safe.

1. Take the run folder's writer lock - before anything in it is read for
   writing or written. Of two trainings started at once on one folder, the
   second stops here with a UserError and has changed nothing.
2. Read run.json (when resuming or reopening) and resolve the config.
3. Pick the device, seed torch, Python's ``random`` and NumPy, load the dataset onto the device (folder kinds),
   holding a few images out for the GAN monitors.
4. Build the model (:meth:`Engine.build_model`, also used by a roll back) and
   the fixed noise of the sample grid.
   A run started from another run's weights (``init_from``, capability
   ``finetune``) takes them here.
5. Restore the latest checkpoint when resuming - before run.json is rewritten,
   so a refused checkpoint leaves the run as it was; a resume that finds no usable
   checkpoint stops and changes nothing. A restart sets the old history aside.
6. Write run.json and the log lines about the model, device and dataset; drop
   metrics and grids of steps after the restored one.

Distributed training wraps ``model.trained_networks()`` between steps 4 and 5
(see :meth:`Engine.build_model`).
"""
from __future__ import annotations

import platform
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import ganstudio
from ..alarm import split_holdout
from ..config import resolve_config
from ..data import DatasetReport, DeviceImages, load_dataset
from ..devices import pick_device
from .. import distributed as dist
from . import ranks as seams
from .. import finetune
from ..errors import CheckpointError, UserError
from ..model import FOLDER_KINDS, GAN
from ..run_lock import RunLock

#: The engine these functions work for (:class:`.loop.Engine`; not imported here, the
#: loop imports this module).
Engine = Any


def take_lock(e: Engine) -> RunLock:
    """The writer lock of the run folder (created if needed; nothing else is touched)."""
    path = e.run.path
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    return e.run.lock()


def prepare(e: Engine, progress: Callable[[int, int], None] | None) -> None:
    s = e.settings
    e.lock = take_lock(e)                                                    # (1)

    existing = e.run.exists()                                                # (2)
    info: dict[str, Any] | None = None
    if existing:
        info = e.run.read_info()
        e.run.check_for_writing()        # no link where training writes: refused at once
        if info["model_id"] != e.spec.id:
            raise UserError(f"run folder {e.run.path} holds a '{info['model_id']}' run, "
                            f"not '{e.spec.id}'")
        if not e.resume_requested and not e.restart_requested and e.run.has_history():
            raise UserError(f"run folder {e.run.path} already holds a run; "
                            "resume it (--resume), start it over (--restart; its history "
                            "is kept in a previous-* folder) or choose another folder")
    base = info["config"] if info else None
    source = None
    if e.init_from and not (e.resume_requested and existing):
        # a new run from another run's weights: its settings are the defaults here
        source = finetune.resolve(e.init_from, e.spec)
        base = source.config
    e.config = resolve_config(e.spec.schema, e.overrides, base=base)
    if e.data_folder is None and info and (info.get("dataset") or {}).get("folder"):
        e.data_folder = Path(info["dataset"]["folder"])

    e.device = pick_device(s.device, precision=s.precision)                 # (3)
    seams.join(e)      # several processes: this rank's device, the group, rank 0's config
    seed = int(e.config.get("seed", 0))
    torch.manual_seed(seed)            # and the streams outside code may draw from
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if e.spec.kind in FOLDER_KINDS:
        _load_data(e, progress, seed, fresh=base is None)

    e.build_model()                                                          # (4)
    if source is not None:
        e.init_record = finetune.start_from(source, e.model, e.config)
    if e.spec.kind in FOLDER_KINDS:
        g = torch.Generator().manual_seed(seed + 1)
        e.fixed_noise = e.model.make_latents(s.n_samples, g)

    if e.resume_requested and existing and not e.restart_requested \
            and e.rank_info.is_writer:   # rank 0 restores and sends it to the others (5)
        loaded, rejected = e.checkpoints.restore_latest()
        if loaded is None and e.run.has_history():
            why = "; ".join(reason for _p, reason in rejected[:3]) or "there is none"
            raise CheckpointError(
                f"cannot resume {e.run.path}: no usable checkpoint ({why}). Nothing "
                "was changed; to train this folder from step 0 start it over (--restart: "
                "its history is kept in a previous-* folder)")
        if loaded is None:
            e.warn("no checkpoint yet; starting from step 0", "checkpoint")
        else:
            e.resumed_from = e.last_checkpoint = loaded
            e.run.log(f"resumed from {loaded.name} at step {e.step}")
    if e.restart_requested and existing:
        e.history_moved_to = e.run.set_history_aside()
        if e.history_moved_to is not None:
            e.run.log(f"started over; the earlier history is in {e.history_moved_to.name}/")

    _write_run_info(e, info)                                                 # (6)
    # Going back to a checkpoint, or starting over in a folder whose run never saved
    # one: metrics and grids of the lost steps go.
    e.run.truncate_metrics_after(e.step)
    e.run.prune_samples_after(e.step)
    seams.share_start(e)   # rank 0's state on every rank, DDP wrappers, each rank's streams


def _one_channel_fits(e: Engine, report: DatasetReport) -> bool:
    field = e.spec.field("channels")
    return (bool(report.grayscale) and field is not None and "channels" not in e.overrides
            and int(e.config["channels"]) != 1 and 1 in (field.choices or [1]))


def _load_data(e: Engine, progress: Callable[[int, int], None] | None, seed: int, *,
               fresh: bool) -> None:
    res, ch = int(e.config["resolution"]), int(e.config["channels"])
    fit = e.config.get("fit", "crop")
    if e.preloaded is not None:
        images = e.preloaded
        e.report = DatasetReport("<in memory>", res, ch, fit, used=int(images.shape[0]))
    else:
        if e.data_folder is None:
            raise UserError("no image folder given (--data DIR)")
        images, e.report = load_dataset(e.data_folder, res, ch, fit, cache_dir=e.cache_dir,
                                        progress=progress)
        if fresh and _one_channel_fits(e, e.report):
            # every image is greyscale and the user did not choose: 1 channel
            images = images[:, :1].contiguous()
            e.config["channels"] = e.report.channels = 1
            e.chosen_from_data["channels"] = 1
    if e.settings.monitors and e.spec.kind == GAN:   # images D never sees (d_overfit)
        images, e.holdout = split_holdout(images, seed)
    e.data = DeviceImages(images, e.device.device, flip=bool(e.config.get("flip", True)),
                          seed=seed)


def _write_run_info(e: Engine, info: dict[str, Any] | None) -> None:
    run_info = {
        "model_id": e.spec.id, "model_name": e.spec.name, "kind": e.spec.kind,
        "plugin": e.spec.plugin, "plugin_version": e.plugin_version,
        "model_version": e.spec.version, "ganstudio_version": ganstudio.__version__,
        "config": e.config, "total_steps": int(e.settings.total_steps),
        "device": e.device.name, "device_reason": e.device.reason,
        "dataset": e.report.to_dict() if e.report else None,
        "host": platform.node(),
        # the batch_size setting is per process; a step trains world_size of them
        "world_size": e.rank_info.world_size,
        "global_batch": dist.global_batch(int(e.config.get("batch_size", 1) or 1),
                                          e.rank_info),
    }
    if e.init_record is not None:
        run_info["init_from"] = e.init_record
    if info is not None:
        run_info["created"] = info.get("created")
        if e.restart_requested and e.init_record is None:
            # started over from fresh weights: where the old history started is not
            # where this one does
            info = {k: v for k, v in info.items() if k != "init_from"}
        e.run.write_info({**info, **run_info})
    else:
        e.run.create(run_info)
    e.run.log(f"model {e.spec.id} ({e.spec.plugin} {e.plugin_version}); "
              f"device {e.device.name} ({e.device.reason})")
    rec = e.init_record
    if rec is not None:
        e.run.log(f"fine-tuning: started from {rec.get('run')} ({rec.get('checkpoint')}, "
                  f"step {rec.get('step')}): its network weights; fresh optimizers, step 0")
    if e.report is not None and e.rank_info.is_writer:   # said once, by rank 0
        e.run.log("dataset: " + e.report.summary())
        if e.chosen_from_data:
            chosen = ", ".join(f"{k}={v}" for k, v in e.chosen_from_data.items())
            e.run.log(f"chosen from the data (not set by the user): {chosen}")
        for skipped in e.report.skipped:
            e.run.log(f"skipped {skipped.path}: {skipped.reason}", "WARNING")
        for path, note in e.report.converted:
            e.run.log(f"converted {path}: {note}")
        for warning in e.report.warnings:
            e.warn(f"dataset: {warning}", "dataset")
