"""Using a trained run: rebuild its model from the latest checkpoint and sample."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoints import candidates, check_state, load_checkpoint
from .config import resolve_config
from .errors import CheckpointError, UserError
from .model import FOLDER_KINDS, ModelSpec
from .runs import RunFolder


def load_trained(run_dir: str | Path, plugin_manager: Any, device: str | torch.device = "cpu",
                 warn=None, checkpoint: str | Path | None = None) -> tuple[ModelSpec, Any, dict]:
    """(spec, model, checkpoint state) for the newest checkpoint of a run that verifies,
    passes the content checks and fits the model; or for the checkpoint file
    ``checkpoint`` when one is given (checked the same way, no fallback).

    Read-only: a checkpoint that fails is reported through ``warn(path, reason)`` and
    the next older one is tried (nothing is renamed). Raises UserError when the folder
    is not a run, the model's plugin is not installed, or no checkpoint can be used.
    """
    run = RunFolder(run_dir)
    info = run.read_info()
    spec = plugin_manager.get_model(info["model_id"])
    device = torch.device(device)
    if checkpoint is not None:
        path = Path(checkpoint)
        state = load_checkpoint(path, map_location="cpu")
        problem = check_state(state, path, model_id=spec.id, max_step=run.history_bound())
        if problem:
            raise CheckpointError(problem)
        try:
            return spec, _build(spec, info, state, device), state
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - values a crafted file may carry
            raise CheckpointError(f"checkpoint {path} does not fit model '{spec.id}' "
                                  f"({e.__class__.__name__}: {_first_line(e)})") from None
    first_problem = ""
    for path, state, problem in candidates(run.checkpoints_dir, "cpu", model_id=spec.id,
                                           max_step=run.history_bound()):
        if state is None:
            first_problem = first_problem or problem
            if warn:
                warn(path, problem)
            continue
        try:
            model = _build(spec, info, state, device)
        except UserError as e:
            problem = f"checkpoint {path} cannot be used: {e}"
        except Exception as e:  # noqa: BLE001 - values a crafted file may carry
            problem = (f"checkpoint {path} does not fit model '{spec.id}' "
                       f"({e.__class__.__name__}: {_first_line(e)})")
        else:
            return spec, model, state
        first_problem = first_problem or problem
        if warn:
            warn(path, problem)
    detail = f" ({first_problem})" if first_problem else ""
    raise CheckpointError(f"no usable checkpoint in {run.checkpoints_dir}{detail}")


def _build(spec: ModelSpec, info: dict, state: dict, device: torch.device) -> Any:
    config = resolve_config(spec.schema, base=state.get("config") or info["config"])
    shape = None
    if spec.kind in FOLDER_KINDS:
        res = int(config["resolution"])
        shape = (int(config["channels"]), res, res)
    model = spec.factory(config, shape, device)
    model.load_state_dict(state["model"])
    return model


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else "no details"


@torch.no_grad()
def generate(model: Any, n: int, seed: int | None = None, batch: int = 64) -> torch.Tensor:
    """``n`` samples in [-1, 1] on the CPU, drawn in batches, reproducible by seed."""
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else torch.seed() % (2**63))
    z = model.make_latents(n, g)
    out = [model.sample(z[i:i + batch]).float().cpu() for i in range(0, n, batch)]
    return torch.cat(out)
