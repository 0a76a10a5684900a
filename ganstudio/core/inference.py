"""Using a trained run: rebuild its model from the latest checkpoint and sample."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoints import load_checkpoint, load_latest
from .config import resolve_config
from .errors import CheckpointError
from .model import GAN, ModelSpec
from .runs import RunFolder


def load_trained(run_dir: str | Path, plugin_manager: Any, device: str | torch.device = "cpu",
                 warn=None, checkpoint: str | Path | None = None) -> tuple[ModelSpec, Any, dict]:
    """(spec, model, checkpoint state) for the newest valid checkpoint of a run,
    or for the checkpoint file ``checkpoint`` when one is given.

    Raises UserError when the folder is not a run, the model's plugin is not
    installed, or no checkpoint can be loaded.
    """
    run = RunFolder(run_dir)
    info = run.read_info()
    spec = plugin_manager.get_model(info["model_id"])
    if checkpoint is not None:
        loaded = Path(checkpoint), load_checkpoint(checkpoint, map_location="cpu")
    else:
        loaded = load_latest(run.checkpoints_dir, map_location="cpu", on_skip=warn)
    if loaded is None:
        raise CheckpointError(f"no usable checkpoint in {run.checkpoints_dir}")
    path, state = loaded
    config = resolve_config(spec.schema, base=state.get("config") or info["config"])
    device = torch.device(device)
    shape = None
    if spec.kind == GAN:
        res = int(config["resolution"])
        shape = (int(config["channels"]), res, res)
    model = spec.factory(config, shape, device)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} does not match model '{spec.id}': {e}") from None
    return spec, model, state


@torch.no_grad()
def generate(model: Any, n: int, seed: int | None = None, batch: int = 64) -> torch.Tensor:
    """``n`` samples in [-1, 1] on the CPU, drawn in batches, reproducible by seed."""
    g = torch.Generator()
    g.manual_seed(int(seed) if seed is not None else torch.seed() % (2**63))
    z = model.make_latents(n, g)
    out = [model.sample(z[i:i + batch]).float().cpu() for i in range(0, n, batch)]
    return torch.cat(out)
