"""The checks on a model's declarations and outputs: the schema, one step's output,
images, state dicts, and what the spec declares (learning rates, latent space,
capabilities)."""
from __future__ import annotations

import math
from typing import Any

from .inputs import tiny_images
from .results import ConformanceError, _describe

def check_schema(spec: Any) -> list[str]:
    """Raise ConformanceError for a broken schema; return warnings (e.g. unbounded numbers)."""
    from ganstudio.core.config import Field, resolve_config
    from ganstudio.core.errors import ConfigError
    from ganstudio.core.model import CAPABILITIES, FOLDER_KINDS, KINDS

    problems: list[str] = []
    warnings: list[str] = []
    if spec.kind not in KINDS:
        problems.append(f"kind {spec.kind!r} is not one of {', '.join(KINDS)}")
    unknown = sorted(set(getattr(spec, "capabilities", ()) or ()) - set(CAPABILITIES))
    if unknown:
        problems.append(f"unknown capabilities {', '.join(unknown)} (known: "
                        f"{', '.join(CAPABILITIES)})")
    if not str(spec.name or "").strip():
        problems.append("the model has no display name (ModelSpec.name)")
    if not str(spec.help or "").strip():
        warnings.append("the model has no help text (ModelSpec.help)")
    fields = list(spec.schema)
    names = [getattr(f, "name", None) for f in fields]
    for f in fields:
        if not isinstance(f, Field):
            problems.append(f"schema entry {f!r} is not a ganstudio.core.config.Field")
    fields = [f for f in fields if isinstance(f, Field)]
    for name in sorted({n for n in names if names.count(n) > 1}, key=str):
        problems.append(f"setting '{name}' is declared twice")
    if spec.kind in FOLDER_KINDS:
        for need in ("resolution", "channels", "batch_size"):
            if need not in names:
                problems.append(f"a GAN needs the setting '{need}' (use common_gan_fields())")
    for f in fields:
        where = f"setting '{f.name}'"
        if not str(f.help or "").strip():
            problems.append(f"{where} has no help text (the settings form shows it)")
        try:
            if f.validate(f.default) != f.default:
                problems.append(f"{where}: default {f.default!r} is not of type {f.type}")
        except ConfigError as e:
            problems.append(f"{where}: default is invalid: {e}")
        if f.type in ("int", "float"):
            if f.min is not None and f.max is not None and f.min > f.max:
                problems.append(f"{where}: min {f.min} is above max {f.max}")
            step = 1 if f.type == "int" else max(abs(f.min or f.max or 1.0) * 1e-3, 1e-9)
            for bound, probe in (("min", None if f.min is None else f.min - step),
                                 ("max", None if f.max is None else f.max + step)):
                if probe is None:
                    continue
                if f.type == "int":
                    probe = int(math.floor(probe)) if bound == "min" else int(math.ceil(probe))
                try:
                    f.validate(probe)
                except ConfigError:
                    continue
                problems.append(f"{where}: {probe!r} beyond its {bound} was accepted")
            if f.min is None or f.max is None:
                warnings.append(f"{where} has no {'min' if f.min is None else 'max'} "
                                "(the form's spin box needs a range)")
        if f.type in ("choice", "multichoice"):
            bogus = "<not-a-choice>"
            try:
                f.validate(bogus)
                problems.append(f"{where}: accepted a value that is not one of its choices")
            except ConfigError:
                pass
    if not problems:
        try:
            resolve_config(fields)
        except ConfigError as e:
            problems.append(f"the defaults do not validate together: {e}")
    if problems:
        raise ConformanceError("; ".join(problems))
    return warnings


def check_step_output(out: Any, device: Any = None) -> None:
    """Raise ConformanceError unless ``out`` is a dict of detached finite scalar tensors."""
    import torch

    if not isinstance(out, dict):
        raise ConformanceError(f"train_step must return a dict of named scalar tensors, "
                               f"got {_describe(out)}")
    if not out:
        raise ConformanceError("train_step returned an empty dict; return at least one loss")
    for key, value in out.items():
        if not isinstance(key, str) or not key:
            raise ConformanceError(f"train_step returned the key {key!r}; names must be strings")
        if key in ("step", "time", "img_per_s"):
            raise ConformanceError(f"train_step returned '{key}', a name the run folder "
                                   "reserves; rename it")
        if not isinstance(value, torch.Tensor):
            hint = (" (return loss.detach(), not loss.item(): .item() waits for the GPU "
                    "every step)" if isinstance(value, (float, int)) else "")
            raise ConformanceError(f"train_step value '{key}' is {_describe(value)}, "
                                   f"not a tensor{hint}")
        if value.dim() != 0:
            raise ConformanceError(f"train_step value '{key}' has shape {tuple(value.shape)}; "
                                   "return a 0-dim scalar (e.g. loss.mean().detach())")
        if value.requires_grad:
            raise ConformanceError(f"train_step value '{key}' is still attached to the graph; "
                                   f"return it .detach()ed")
        if not value.is_floating_point():
            raise ConformanceError(f"train_step value '{key}' has dtype {value.dtype}; "
                                   "return a float tensor")
        if device is not None and value.device.type != torch.device(device).type:
            raise ConformanceError(f"train_step value '{key}' is on {value.device}, the model "
                                   f"on {device}; keep metrics on the model's device")
        if not bool(torch.isfinite(value)):
            raise ConformanceError(f"train_step value '{key}' is {float(value)} (not finite) "
                                   "on tiny data")


def check_images(images: Any, what: str, *, n: int | None, channels: int | None,
                 max_hw: tuple[int, int] | None) -> tuple[int, ...]:
    """Raise ConformanceError unless ``images`` is (N, C, h, w) float in [-1, 1]."""
    import torch

    if not isinstance(images, torch.Tensor):
        raise ConformanceError(f"{what} must return a tensor, got {_describe(images)}")
    if images.dim() != 4:
        raise ConformanceError(f"{what} must return (N, C, H, W), got shape "
                               f"{tuple(images.shape)}")
    if n is not None and images.shape[0] != n:
        raise ConformanceError(f"{what} returned {images.shape[0]} images for {n} latents")
    if channels is not None and images.shape[1] != channels:
        raise ConformanceError(f"{what} returned {images.shape[1]} channels; the config asks "
                               f"for {channels}")
    if channels is None and images.shape[1] not in (1, 3):
        raise ConformanceError(f"{what} returned {images.shape[1]} channels; use 1 or 3")
    if max_hw is not None and (images.shape[2] > max_hw[0] or images.shape[3] > max_hw[1]):
        raise ConformanceError(f"{what} returned {images.shape[2]}x{images.shape[3]} images, "
                               f"larger than the training size {max_hw[0]}x{max_hw[1]}")
    if not images.is_floating_point():
        raise ConformanceError(f"{what} returned dtype {images.dtype}; return floats in [-1, 1]")
    if images.requires_grad:
        raise ConformanceError(f"{what} returned a tensor attached to the graph; "
                               "decorate it with @torch.no_grad()")
    x = images.detach().float()
    if not bool(torch.isfinite(x).all()):
        raise ConformanceError(f"{what} returned NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-4 or hi > 1.0 + 1e-4:
        raise ConformanceError(f"{what} values span [{lo:.3f}, {hi:.3f}]; images must lie in "
                               "[-1, 1] (end the generator with tanh, or clamp)")
    return tuple(images.shape)


def _flatten(state: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out.update(_flatten(v, f"{prefix}{k}/"))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(_flatten(v, f"{prefix}{i}/"))
    else:
        out[prefix.rstrip("/")] = state
    return out


def compare_states(a: dict, b: dict) -> str:
    """'' when two state dicts hold equal values, else the first difference."""
    import torch

    fa, fb = _flatten(a), _flatten(b)
    if set(fa) != set(fb):
        missing = sorted(set(fa) ^ set(fb))[:3]
        return f"keys differ: {', '.join(missing)}"
    for key in fa:
        x, y = fa[key], fb[key]
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
                return f"'{key}' is a tensor in one state only"
            if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x.cpu(), y.cpu()):
                return f"'{key}' differs"
        elif x != y and not (isinstance(x, float) and isinstance(y, float)
                             and math.isnan(x) and math.isnan(y)):
            return f"'{key}' differs ({x!r} vs {y!r})"
    return ""


class _DeclaredNote(Exception):
    """A declaration that is missing but not wrong: the check passes with a note."""


def check_declared(spec: Any, model: Any, config: dict, shape: tuple[int, ...] | None) -> str:
    """Raise ConformanceError unless what the spec declares holds for the built model;
    return a one-line summary. Checks the latent size, that every learning-rate setting
    is a number in the schema and names optimizers the model has, and each declared
    capability that can be checked on the CPU (``ddp``, ``d_features``, ``d_logits``,
    ``finetune``)."""
    from collections.abc import Mapping

    import torch

    from ganstudio.core.model import FOLDER_KINDS, GAN

    said: list[str] = []
    if not isinstance(spec.learning_rates, Mapping) and len(spec.learning_rates) > 1:
        raise ConformanceError(
            f"learning_rates lists {', '.join(spec.learning_rates)} without saying which "
            "optimizer each sets; declare a mapping such as {'lr_g': 'g', 'lr_d': 'd'} "
            "(names from optimizers())")
    for key in spec.lr_targets():
        f = spec.field(key)
        if f is None or f.type not in ("float", "int"):
            raise ConformanceError(f"learning_rates names '{key}', which is not a number "
                                   "setting of the schema")
    if spec.kind not in FOLDER_KINDS:
        return "no learning rates or capabilities to check" if not spec.lr_targets() else \
            f"learning rates {', '.join(spec.lr_targets())}"
    opts = model.optimizers() if callable(getattr(model, "optimizers", None)) else {}
    if not isinstance(opts, dict) or not all(isinstance(o, torch.optim.Optimizer)
                                             for o in opts.values()):
        raise ConformanceError(f"optimizers() must return a dict of name -> "
                               f"torch.optim.Optimizer, got {_describe(opts)}")
    if spec.lr_targets() and not opts:
        raise ConformanceError("the spec declares learning_rates but optimizers() returns "
                               "none: the engine could not apply them on resume or lower them "
                               "on roll back")
    missing = sorted({n for t in spec.lr_targets().values() for n in t if n not in opts})
    if missing:
        raise ConformanceError(f"learning_rates name the optimizer(s) {', '.join(missing)}, "
                               f"but optimizers() has {', '.join(opts) or 'none'}")
    if not opts:
        raise _DeclaredNote("optimizers() returns none: after NaN a roll back cannot lower "
                            "the learning rates (declare optimizers() and "
                            "ModelSpec.learning_rates)")
    said.append(f"optimizers {', '.join(opts)}")
    if spec.lr_targets():
        said.append(f"learning rates {', '.join(spec.lr_targets())}")
    if spec.kind == GAN and spec.latent is not None:
        z = model.make_latents(2, torch.Generator().manual_seed(1))
        want = spec.latent.size(config)
        if z.dim() < 2 or z.shape[1] != want:
            raise ConformanceError(f"the spec's latent space has {want} dimensions, but "
                                   f"make_latents(2) gave shape {tuple(z.shape)}")
        said.append(f"latent {want} ({spec.latent.distribution})")
    caps = set(getattr(spec, "capabilities", ()) or ())
    if "ddp" in caps:
        nets = model.trained_networks()
        if not nets or not all(isinstance(n, torch.nn.Module) for n in nets.values()):
            raise ConformanceError("capability 'ddp' needs trained_networks() to return a dict "
                                   "of name -> torch.nn.Module")
        owned = {id(p) for n in nets.values() for p in n.parameters()}
        for name, opt in opts.items():
            stray = [p for g in opt.param_groups for p in g["params"] if id(p) not in owned]
            if stray:
                raise ConformanceError(f"capability 'ddp': optimizer '{name}' trains "
                                       "parameters outside trained_networks()")
    if "d_features" in caps and shape is not None:
        x = tiny_images(2, shape[0], shape[1]).float().div(127.5).sub(1.0).to(model.device)
        x.requires_grad_(True)
        feats = model.discriminator_features(x)
        if not isinstance(feats, (list, tuple)) or not feats or not all(
                isinstance(f, torch.Tensor) and f.shape[0] == 2 for f in feats):
            raise ConformanceError("capability 'd_features': discriminator_features(x) must "
                                   "return a non-empty list of tensors with one row per image")
        if not feats[-1].requires_grad:
            raise ConformanceError("capability 'd_features': the features must be "
                                   "differentiable with respect to the images (projection "
                                   "follows their gradient); drop torch.no_grad()")
        (grad,) = torch.autograd.grad(sum(f.float().square().mean() for f in feats), x)
        if not bool(torch.isfinite(grad).all()):
            raise ConformanceError("capability 'd_features': the features' gradient with "
                                   "respect to the images is not finite")
    if "d_logits" in caps and shape is not None:
        x = tiny_images(3, shape[0], shape[1]).float().div(127.5).sub(1.0).to(model.device)
        with torch.no_grad():
            logits = model.discriminate(x)
        if not isinstance(logits, torch.Tensor) or logits.reshape(-1).shape[0] != 3:
            raise ConformanceError("capability 'd_logits': discriminate(x) must return one "
                                   "logit per image (a tensor of shape (N,))")
        if not bool(torch.isfinite(logits.float()).all()):
            raise ConformanceError("capability 'd_logits': discriminate(x) gave a value that "
                                   "is not finite")
    if "finetune" in caps:
        fresh = spec.factory(dict(config), shape, model.device)
        fresh.load_weights(model.state_dict())
        diff = compare_states(model.generator_module().state_dict(),
                              fresh.generator_module().state_dict())
        if diff:
            raise ConformanceError(f"capability 'finetune': after load_weights the generator "
                                   f"differs from the source ({diff})")
    if caps:
        said.append(f"capabilities {', '.join(sorted(caps))}")
    return "; ".join(said)
