"""Learning rates, as the model declares them (never guessed from setting names).

``ModelSpec.learning_rates`` names the settings that are learning rates and the
optimizers (``GANModel.optimizers()``) each one sets. From that the engine

* reapplies every changed learning-rate setting on resume (``--set lr_d=...``,
  or a roll back to a checkpoint from before an earlier roll back): the
  optimizers' restored rates are scaled by new / old;
* lowers the rates on a roll back, changing one setting per optimizer
  (``{"lr": ("g", "d"), "ttur_mult": "d"}`` halves ``lr`` only, which halves both);
* suggests lower rates when a run fails on NaN.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..model import ModelSpec


def optimizers_of(model: Any) -> dict[str, torch.optim.Optimizer]:
    """The model's declared optimizers ({} when it declares none)."""
    found = model.optimizers() if callable(getattr(model, "optimizers", None)) else {}
    return {str(k): v for k, v in dict(found or {}).items()
            if isinstance(v, torch.optim.Optimizer)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def changed_ratios(spec: ModelSpec, saved: dict[str, Any], config: dict[str, Any]
                   ) -> dict[str, float]:
    """Each declared learning-rate setting whose value differs from ``saved``: new / old."""
    ratios = {}
    for key in spec.lr_targets():
        old, new = saved.get(key), config.get(key)
        if _is_number(old) and _is_number(new) and old > 0 and \
                not math.isclose(float(new), float(old), rel_tol=1e-9):
            ratios[key] = float(new) / float(old)
    return ratios


def factors_per_optimizer(spec: ModelSpec, ratios: dict[str, float],
                          names: list[str]) -> dict[str, float]:
    """Multiply, per optimizer, the ratios of the settings that set it."""
    targets = spec.lr_targets()
    out = {name: 1.0 for name in names}
    for key, ratio in ratios.items():
        for name in targets.get(key) or names:
            if name in out:
                out[name] *= ratio
    return {k: v for k, v in out.items() if not math.isclose(v, 1.0, rel_tol=1e-12)}


def scale(optimizers: dict[str, torch.optim.Optimizer], factors: dict[str, float]) -> None:
    for name, factor in factors.items():
        for group in optimizers[name].param_groups:
            group["lr"] = group["lr"] * factor


def ambiguous(spec: ModelSpec, ratios: dict[str, float]) -> bool:
    """Several plain-list learning rates changing by different factors: which optimizer
    each sets is not declared, so no scaling is right."""
    if isinstance(spec.learning_rates, Mapping) or len(spec.lr_targets()) < 2:
        return False
    values = list(ratios.values())
    return any(not math.isclose(v, values[0], rel_tol=1e-9) for v in values)


def unknown_targets(spec: ModelSpec, names: list[str]) -> list[str]:
    """Optimizer names the spec's learning rates point at that the model does not have."""
    return sorted({n for targets in spec.lr_targets().values() for n in targets
                   if n not in names})


def lowered_settings(spec: ModelSpec, config: dict[str, Any], factor: float
                     ) -> dict[str, float]:
    """The learning-rate settings to scale by ``factor`` so every optimizer's rate is
    scaled once: settings in declared order, each taken when none of its optimizers
    is covered yet (a setting without named optimizers covers them all)."""
    covered: set[str] = set()
    everything = False
    out: dict[str, float] = {}
    for key, targets in spec.lr_targets().items():
        value = config.get(key)
        if not _is_number(value) or everything:
            continue
        if not targets:
            if covered:
                continue
            everything = True
        elif covered & set(targets):
            continue
        covered.update(targets)
        out[key] = float(value) * factor
    return out
