"""Start a new run from an earlier run's network weights (fine-tuning).

``RUN[:CHECKPOINT]`` names the source: a run folder, optionally followed by a
checkpoint as a step number (``runs/cats:2000``), a checkpoint file name in the
run's ``checkpoints/`` folder (``runs/cats:ckpt_00002000.pt``) or ``latest``
(the default: the newest checkpoint that verifies).

Only models that declare the ``finetune`` capability can start this way; the
source must be a run of the same model whose networks have the same shapes.
The new run takes the networks through ``model.load_weights(state)``: no
optimizer state, no step counter, no data order. Settings the user does not
give come from the source run (so the architecture matches by default, and the
same seed gives the same fixed-noise grid). Freezing part of the discriminator
(FreezeD) is a setting of the model, not of this module.

Every problem is a :class:`~ganstudio.core.errors.UserError` that names the run
or file and what differs; nothing here speaks to a face.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoints import (NAME_RE, check_state, checkpoint_name, list_checkpoints,
                          load_checkpoint, load_latest)
from .errors import CheckpointError, UserError
from .model import ModelSpec
from .runs import RunFolder

CAPABILITY = "finetune"


@dataclass
class Source:
    """The run and checkpoint a new run starts from."""

    run: Path
    checkpoint: Path
    step: int
    model_id: str
    config: dict[str, Any]
    state: dict[str, Any]        # the checkpoint's model state (``model.state_dict()``)

    def record(self) -> dict[str, Any]:
        """What run.json keeps under ``init_from``."""
        return {"run": str(self.run), "checkpoint": self.checkpoint.name, "step": self.step,
                "model_id": self.model_id}


def split_reference(text: str) -> tuple[Path, str | None]:
    """``RUN[:CHECKPOINT]`` -> (run folder, checkpoint text or None).

    A folder whose own name contains ':' still works: the whole text is tried as a
    folder first."""
    text = str(text).strip()
    if not text:
        raise UserError("--init-from needs a run folder (RUN or RUN:CHECKPOINT)")
    whole = Path(text).expanduser()
    if whole.is_dir() or ":" not in text:
        return whole, None
    run, _, ckpt = text.rpartition(":")
    if not run or (len(run) == 1 and os.name == "nt"):   # a bare drive letter
        return whole, None
    return Path(run).expanduser(), (ckpt.strip() or None)


def _pick_checkpoint(run: RunFolder, which: str | None,
                     model_id: str) -> tuple[Path, dict[str, Any]]:
    """The source checkpoint, its contents checked as a resume checks them (a source
    run may come from someone else: a checksum proves only that the file is whole)."""
    folder = run.checkpoints_dir
    bound = run.history_bound()
    if which is None or which.lower() == "latest":
        skipped: list[str] = []
        loaded = load_latest(folder, map_location="cpu", model_id=model_id, max_step=bound,
                             on_skip=lambda _path, why: skipped.append(why))
        if loaded is None:
            why = f": {skipped[0]}" if skipped else ""
            raise UserError(f"run {run.path} has no usable checkpoint to start from "
                            f"(nothing verified in {folder}){why}")
        return loaded
    if which.isdigit():
        path = folder / checkpoint_name(int(which))
    elif NAME_RE.match(Path(which).name) and Path(which).parent == Path("."):
        path = folder / which
    else:
        path = Path(which).expanduser()
    if not path.is_file():
        steps = [int(NAME_RE.match(p.name).group(1)) for p in list_checkpoints(folder)]
        have = (f"it has steps {', '.join(str(s) for s in steps)}" if steps
                else "it has no checkpoints")
        raise UserError(f"checkpoint '{which}' not found in run {run.path} ({have})")
    try:
        state = load_checkpoint(path, map_location="cpu")
    except CheckpointError as e:
        raise UserError(f"cannot start from {path}: {e}") from None
    problem = check_state(state, path, model_id=model_id, max_step=bound)
    if problem:
        raise UserError(problem)
    return path, state


def resolve(reference: str, spec: ModelSpec) -> Source:
    """Find and load the source checkpoint; refuse another model or a model that cannot
    take another run's weights."""
    if not spec.has(CAPABILITY):
        raise UserError(f"model '{spec.id}' cannot start from another run's weights (it does "
                        f"not declare the '{CAPABILITY}' capability)")
    folder, which = split_reference(reference)
    folder = folder.absolute()      # recorded in run.json: valid from any working folder
    run = RunFolder(folder)
    if not folder.is_dir():
        raise UserError(f"run folder not found: {folder}")
    info = run.read_info()
    if info.get("model_id") != spec.id:
        raise UserError(f"run {folder} is a '{info.get('model_id')}' run; a '{spec.id}' run "
                        "can only start from a run of the same model")
    path, state = _pick_checkpoint(run, which, spec.id)
    if state.get("model_id") != spec.id:
        raise UserError(f"checkpoint {path} belongs to model '{state.get('model_id')}', "
                        f"not '{spec.id}'")
    model_state = state.get("model")
    if not isinstance(model_state, dict):
        raise UserError(f"checkpoint {path} holds no model state")
    config = state.get("config") if isinstance(state.get("config"), dict) else info["config"]
    return Source(run=folder, checkpoint=path, step=int(state.get("step", 0)),
                  model_id=spec.id, config=dict(config), state=model_state)


def _tensors(state: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    if isinstance(state, dict):
        for key, value in state.items():
            out.update(_tensors(value, f"{prefix}{key}."))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            out.update(_tensors(value, f"{prefix}{i}."))
    elif isinstance(state, torch.Tensor):
        out[prefix[:-1]] = state
    return out


def _changed_settings(source: dict[str, Any], config: dict[str, Any]) -> list[str]:
    return [f"{k} {source[k]!r} there, {config[k]!r} here" for k in sorted(config)
            if k in source and source[k] != config[k]]


def mismatches(source: Source, model: Any) -> list[str]:
    """Tensors whose shapes differ between the source's state and the new model's."""
    theirs, ours = _tensors(source.state), _tensors(model.state_dict())
    return [f"{k} is {tuple(theirs[k].shape)} there, {tuple(v.shape)} here"
            for k, v in ours.items() if k in theirs and theirs[k].shape != v.shape]


def start_from(source: Source, model: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Load the source's network weights into ``model``; returns the ``init_from`` record.

    Raises UserError naming what differs (tensor shapes, and the settings that differ
    between the two runs) when the weights do not fit."""
    where = f"run {source.run} ({source.checkpoint.name})"
    bad = mismatches(source, model)
    error = ""
    if not bad:
        try:
            model.load_weights(source.state)
        except NotImplementedError:
            raise UserError("this model cannot start from another run's weights "
                            "(load_weights is not implemented)") from None
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            error = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
    if bad or error:
        what = "; ".join(bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "") \
            if bad else error
        changed = _changed_settings(source.config, config)
        hint = f"; settings that differ: {', '.join(changed)}" if changed else ""
        raise UserError(f"the networks of {where} do not fit this model: {what}{hint}")
    return source.record()
