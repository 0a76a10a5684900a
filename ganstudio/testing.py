"""The conformance kit: checks that a plugin's models work in GAN Studio.

Three ways to run the same checks:

* ``ganstudio plugins --check NAME`` prints a readable report (exit code 0 when
  every check passes);
* in a plugin's own tests, subclass :class:`PluginConformance`::

      from ganstudio.testing import PluginConformance

      class TestMyPlugin(PluginConformance):
          plugin = "my_gan"          # the entry-point name (or the module itself)

  pytest then runs one ``test_model_conforms[<model id>]`` per model;
* from Python: :func:`check_plugin`, :func:`check_model`, :func:`check_schema`.

What is checked for every model (on the CPU, on a few generated images):

``schema``   defaults validate, bounds are consistent and enforced, every setting
             has help text, a GAN has ``resolution``, ``channels`` and ``batch_size``.
``build``    the factory builds the model through the real :class:`~ganstudio.core.engine.Engine`.
``steps``    a few real engine steps; ``train_step`` returns a dict of detached,
             finite, 0-dim float tensors; one metrics line per step.
``samples``  (GAN) ``make_latents`` and ``sample`` give (N, C, h, w) in [-1, 1],
             deterministic for the same latents; (image2image) ``preview``.
``state``    ``state_dict`` survives ``torch.save`` / ``torch.load(weights_only=True)``
             (what checkpoints use) and a fresh model that loads it is identical.
``declared`` what the ModelSpec declares holds: latent size, learning-rate settings and
             the optimizers they name, capabilities ``ddp``, ``d_features``, ``finetune``.
``resume``   a run interrupted by a checkpoint and resumed logs exactly the same
             losses as the uninterrupted run (``log_every_steps=1``).

Non-model hooks (``ganstudio_metrics``, ``ganstudio_run_finished``) are called
once with made-up values in a temporary run folder.

This module is also a pytest plugin (entry point ``pytest11``), so it is
imported by every pytest run: it imports nothing heavy at module level and
its only hook acts on :class:`PluginConformance` subclasses alone.
"""
from __future__ import annotations

import io
import math
import sys
import tempfile
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, TextIO

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"

#: Steps of the uninterrupted run; the resume check stops halfway and resumes.
KIT_STEPS = 4
#: Batch size the kit asks for (clamped to the setting's bounds).
KIT_BATCH = 4
#: Number of generated training images.
KIT_IMAGES = 12
#: The older way to shrink a plugin's models for the kit, still honoured after
#: ``ModelSpec.test_settings``: a module attribute
#: ``GANSTUDIO_TEST_SETTINGS = {"model_id": {"setting": value, ...}}``.
TEST_SETTINGS_ATTR = "GANSTUDIO_TEST_SETTINGS"

_GAN_METHODS = ("train_step", "make_latents", "sample", "state_dict", "load_state_dict",
                "generator_module", "status")
_JOB_METHODS = ("train_step", "preview", "state_dict", "load_state_dict", "status")
_WEIGHT_WORDS = ("weight", "checkpoint", "ckpt", "vgg", "model", "pretrained")


class ConformanceError(AssertionError):
    """A check failed; the message says what to change."""


@dataclass
class CheckResult:
    """Outcome of one check of one model (``model`` is "" for plugin-level checks)."""

    model: str
    name: str
    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def line(self) -> str:
        return f"{self.status.upper():<4}  {self.name:<8} {self.detail}".rstrip()


# -- data and configs ----------------------------------------------------------------------------
def tiny_images(n: int = KIT_IMAGES, channels: int = 3, size: int = 16, seed: int = 0):
    """``n`` small uint8 images (N, C, H, W): soft colour blobs on gradients."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(-1, 1, size).view(1, size, 1)
    xs = torch.linspace(-1, 1, size).view(1, 1, size)
    out = []
    for _ in range(n):
        cx, cy = (torch.rand(2, generator=g) * 1.2 - 0.6).tolist()
        radius = 0.3 + 0.4 * float(torch.rand(1, generator=g))
        blob = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / radius ** 2)
        colour = torch.rand(channels, 1, 1, generator=g)
        background = 0.3 * (xs + 1) / 2 * torch.rand(channels, 1, 1, generator=g)
        img = (background + colour * blob).clamp(0, 1)
        out.append((img * 255).round().to(torch.uint8))
    return torch.stack(out)


def _smallest_resolution(field: Any) -> int | None:
    if field is None:
        return None
    if field.type == "choice":
        numbers = [c for c in field.choices if isinstance(c, int) and not isinstance(c, bool)]
        return min(numbers) if numbers else None
    if field.type == "int":
        lo = int(field.min) if field.min is not None else 8
        hi = int(field.max) if field.max is not None else 16
        return min(max(16, lo), hi)
    return None


def _clamp(field: Any, value: int) -> int:
    if field.min is not None:
        value = max(value, int(math.ceil(field.min)))
    if field.max is not None:
        value = min(value, int(field.max))
    return value


def _plugin_settings(module: Any, model_id: str) -> dict:
    table = getattr(module, TEST_SETTINGS_ATTR, None) if module is not None else None
    if isinstance(table, dict) and isinstance(table.get(model_id), dict):
        return dict(table[model_id])
    return {}


def _looks_like_weights(field: Any) -> bool:
    text = field.name.lower()
    return any(word in text for word in _WEIGHT_WORDS)


def tiny_overrides(spec: Any, *, module: Any = None, workdir: str | Path | None = None,
                   overrides: dict | None = None) -> dict:
    """Setting overrides that make a model small enough for the kit.

    Folder-trained models: the smallest ``resolution`` and a batch of 4 (the
    engine's own settings). Every empty ``path`` setting (except ones named like
    weights) gets a generated 16 px image in ``workdir``. Then what the model
    declares in ``ModelSpec.test_settings`` (e.g. small network widths: the kit
    never guesses them from setting names), the plugin's older
    ``GANSTUDIO_TEST_SETTINGS`` for this model, then ``overrides``.
    """
    from ganstudio.core.model import FOLDER_KINDS

    cfg: dict[str, Any] = {}
    if spec.kind in FOLDER_KINDS:
        res = _smallest_resolution(spec.field("resolution"))
        if res is not None:
            cfg["resolution"] = res
        bs = spec.field("batch_size")
        if bs is not None and bs.type == "int":
            cfg["batch_size"] = _clamp(bs, KIT_BATCH)
    if workdir is not None:
        from PIL import Image

        folder = Path(workdir) / "inputs"
        for i, f in enumerate(spec.schema):
            if f.type == "path" and not f.default and not _looks_like_weights(f):
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{f.name}.png"
                arr = tiny_images(1, 3, 16, seed=100 + i)[0].permute(1, 2, 0).numpy()
                Image.fromarray(arr).save(path)
                cfg[f.name] = str(path)
    cfg.update(dict(getattr(spec, "test_settings", None) or {}))
    cfg.update(_plugin_settings(module, spec.id))
    cfg.update(overrides or {})
    return cfg


# -- the schema check ----------------------------------------------------------------------------
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


# -- helpers for the model checks ----------------------------------------------------------------
def _describe(value: Any) -> str:
    try:
        import torch
        if isinstance(value, torch.Tensor):
            return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    except ImportError:  # pragma: no cover
        pass
    return f"a {type(value).__name__}"


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


def _engine_settings(total: int) -> Any:
    from ganstudio.core.engine import EngineSettings

    # Everything by steps, nothing by the clock, no monitors: a slow model gets the same
    # metrics lines in the uninterrupted and the resumed run.
    return EngineSettings(total_steps=total, log_every_s=1e9, log_every_steps=1,
                          sample_every_s=1e9, sample_every_steps=total,
                          checkpoint_every_s=0.0, checkpoint_every_steps=0, keep_checkpoints=2,
                          n_samples=4, on_nan="stop", device="cpu", precision="fp32",
                          monitors=False)


def _loss_rows(run_dir: Path) -> list[dict]:
    from ganstudio.core.runs import RunFolder

    rows, _ = RunFolder(run_dir).read_metrics(0)
    return [{k: v for k, v in r.items() if k not in ("time", "img_per_s")} for r in rows]


def _sample_problem(model: Any, shape: tuple[int, ...] | None) -> str:
    """After the engine stopped: if ``sample(z)`` itself breaks the contract (the engine
    renders a sample grid during the steps), say so instead of the engine's generic error."""
    import torch

    if shape is None:
        return ""
    try:
        z = model.make_latents(2, torch.Generator().manual_seed(0))
        check_images(model.sample(z), "sample(z)", n=2, channels=shape[0], max_hw=shape[1:])
    except ConformanceError as e:
        return f"the engine stopped while rendering the sample grid: {e}"
    except Exception:  # noqa: BLE001 - the engine's own message is the better one then
        return ""
    return ""


def _failure_text(event: Any) -> str:
    msg = getattr(event, "message", str(event))
    tb = getattr(event, "traceback", "") or ""
    where = _plugin_frame(tb)
    return msg + (f" ({where})" if where else "")


def _plugin_frame(tb: str) -> str:
    """'file.py, line N' of the innermost frame outside torch and ganstudio itself."""
    frames = [ln.strip() for ln in tb.splitlines() if ln.strip().startswith('File "')]
    for line in reversed(frames):
        path = line.split('"')[1]
        norm = path.replace("\\", "/")
        if "/torch/" in norm or "/ganstudio/" in norm or "/pluggy/" in norm:
            continue
        lineno = line.split("line ")[1].split(",")[0] if "line " in line else "?"
        name = Path(path).name
        if name == "__init__.py":  # a package: keep its folder so the file is findable
            name = f"{Path(path).parent.name}/{name}"
        return f"{name}, line {lineno}"
    return ""


def _exc_text(e: BaseException) -> str:
    where = _plugin_frame(traceback.format_exc())
    text = f"{e.__class__.__name__}: {e}" if not isinstance(e, ConformanceError) else str(e)
    return text + (f" ({where})" if where and not isinstance(e, ConformanceError) else "")


class _DeclaredNote(Exception):
    """A declaration that is missing but not wrong: the check passes with a note."""


def check_declared(spec: Any, model: Any, config: dict, shape: tuple[int, ...] | None) -> str:
    """Raise ConformanceError unless what the spec declares holds for the built model;
    return a one-line summary. Checks the latent size, that every learning-rate setting
    is a number in the schema and names optimizers the model has, and each declared
    capability that can be checked on the CPU (``ddp``, ``d_features``, ``finetune``)."""
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


# -- one model -----------------------------------------------------------------------------------
def check_model(spec: Any, *, workdir: str | Path | None = None, module: Any = None,
                overrides: dict | None = None, steps: int = KIT_STEPS) -> list[CheckResult]:
    """Run every check on one model; returns one CheckResult per check (never raises
    for a plugin's fault)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="ganstudio-kit-") as tmp:
            return check_model(spec, workdir=tmp, module=module, overrides=overrides,
                               steps=steps)
    import torch

    # The kit's models are tiny: one CPU thread is faster than several fighting over
    # a busy machine (and the exact-resume comparison does not depend on it).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _check_model(spec, Path(workdir), module, overrides, steps)
    finally:
        torch.set_num_threads(threads)


def _check_model(spec: Any, workdir: Path, module: Any, overrides: dict | None,
                 steps: int) -> list[CheckResult]:
    import torch

    from ganstudio.core import events as ev
    from ganstudio.core.engine import Engine
    from ganstudio.core.errors import UserError
    from ganstudio.core.model import FOLDER_KINDS

    mid = spec.id
    results: list[CheckResult] = []

    def add(name: str, status: str, detail: str = "") -> CheckResult:
        r = CheckResult(mid, name, status, detail)
        results.append(r)
        return r

    def skip_rest(names: Iterable[str], why: str) -> list[CheckResult]:
        for n in names:
            add(n, SKIP, why)
        return results

    later = ["steps", "samples", "state", "declared", "resume"]
    # schema --------------------------------------------------------------------------------
    try:
        warnings = check_schema(spec)
    except ConformanceError as e:
        add("schema", FAIL, str(e))
        return skip_rest(["build"] + later, "the schema must pass first")
    n_fields = len(list(spec.schema))
    add("schema", WARN if warnings else PASS,
        f"{n_fields} settings; defaults valid, bounds enforced, help present"
        + (f"; note: {'; '.join(warnings)}" if warnings else ""))

    on_folder = spec.kind in FOLDER_KINDS
    try:
        over = tiny_overrides(spec, module=module, workdir=workdir, overrides=overrides)
    except Exception as e:  # noqa: BLE001 - a bad GANSTUDIO_TEST_SETTINGS, say so
        add("build", FAIL, f"could not prepare the kit's settings: {_exc_text(e)}")
        return skip_rest(later, "the model must build first")
    from ganstudio.core.config import resolve_config
    try:
        cfg = resolve_config(spec.schema, over)
    except UserError as e:
        add("build", FAIL, f"the kit's settings {over} were refused: {e}")
        return skip_rest(later, "the model must build first")
    images = None
    if on_folder:
        res, ch = int(cfg["resolution"]), int(cfg["channels"])
        images = tiny_images(KIT_IMAGES, ch, res)

    def engine(run: str, total: int, resume: bool = False) -> Any:
        return Engine(spec, workdir / run, overrides=over, settings=_engine_settings(total),
                      images=images, resume=resume, cache_dir=workdir / "cache",
                      plugin_version="kit")

    # build -----------------------------------------------------------------------------------
    eng = engine("run_a", steps)
    try:
        eng.prepare()
    except UserError as e:
        # e.g. pretrained weights the kit cannot invent: say so, do not pretend it passed
        add("build", SKIP, f"the model needs inputs the kit cannot make ({e}); give them in "
                           f"ModelSpec.test_settings (or {TEST_SETTINGS_ATTR})")
        return skip_rest(later, "the model was not built")
    except Exception as e:  # noqa: BLE001
        add("build", FAIL, f"the factory raised {_exc_text(e)}")
        return skip_rest(later, "the model must build first")
    model = eng.model
    needed = _GAN_METHODS if on_folder else _JOB_METHODS
    missing = [m for m in needed if not callable(getattr(model, m, None))]
    if missing:
        add("build", FAIL, f"the model object lacks {', '.join(missing)} "
                           f"(subclass ganstudio.core.model.{'GANModel' if on_folder else 'ImageJob'})")
        return skip_rest(later, "the model must build first")
    config = dict(eng.config)
    shape = tuple(eng.data.shape) if eng.data is not None else None
    small = {k: config[k] for k in ("resolution", "channels", "batch_size") if k in config}
    add("build", PASS, f"built on cpu with {small or 'its defaults'}"
        if on_folder else "built on cpu")

    # steps (through the real engine, with a spy on train_step) --------------------------------
    outputs: list[Any] = []
    original_step = model.train_step

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original_step(*args, **kwargs)
        outputs.append(out)
        return out

    model.train_step = spy
    try:
        final = eng.run_loop()
    finally:
        try:
            del model.train_step
        except AttributeError:
            pass
    try:
        for out in outputs:
            check_step_output(out, eng.device.device)
        if isinstance(final, ev.Failed):
            raise ConformanceError((_sample_problem(model, shape) if on_folder else "")
                                   or f"the engine stopped: {_failure_text(final)}")
        rows = _loss_rows(workdir / "run_a")
        got = [r["step"] for r in rows]
        if got != list(range(1, steps + 1)):
            raise ConformanceError(f"expected one metrics line per step 1..{steps}, got {got}")
        status = model.status()
        if not isinstance(status, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) for k, v in status.items()):
            raise ConformanceError("status() must return a dict of name -> number, got "
                                   f"{status!r}")
        names = ", ".join(sorted(outputs[-1]))
        add("steps", PASS, f"{steps} engine steps; metrics {names} are detached finite scalars")
    except ConformanceError as e:
        add("steps", FAIL, str(e))
        return skip_rest(later[1:], "training steps must pass first")
    except Exception as e:  # noqa: BLE001
        add("steps", FAIL, _exc_text(e))
        return skip_rest(later[1:], "training steps must pass first")

    # samples ---------------------------------------------------------------------------------
    z = None
    try:
        with torch.no_grad():
            if on_folder:
                z = model.make_latents(5, torch.Generator().manual_seed(7))
                z2 = model.make_latents(5, torch.Generator().manual_seed(7))
                if not isinstance(z, torch.Tensor) or z.shape[0] != 5:
                    raise ConformanceError(f"make_latents(5, generator) returned {_describe(z)}; "
                                           "expected 5 latent vectors")
                if not torch.equal(z, z2):
                    raise ConformanceError("make_latents gave different latents for the same "
                                           "generator seed; draw them from the generator "
                                           "(the fixed-noise grid depends on it)")
                a = model.sample(z)
                got = check_images(a, "sample(z)", n=5, channels=shape[0], max_hw=shape[1:])
                b = model.sample(z)
                if not torch.equal(a, b):
                    raise ConformanceError("sample(z) differs between two calls with the same "
                                           "latents; sample in eval mode without fresh noise")
                gen = model.generator_module()
                if not isinstance(gen, torch.nn.Module):
                    raise ConformanceError(f"generator_module() returned {_describe(gen)}, "
                                           "not a torch.nn.Module")
            else:
                got = check_images(model.preview(), "preview()", n=None, channels=None,
                                   max_hw=None)
                check_images(model.result(), "result()", n=None, channels=None, max_hw=None)
        add("samples", PASS, f"{'sample' if on_folder else 'preview'} gives {got} in [-1, 1]")
    except ConformanceError as e:
        add("samples", FAIL, str(e))
    except Exception as e:  # noqa: BLE001
        add("samples", FAIL, _exc_text(e))

    # state round trip ------------------------------------------------------------------------
    try:
        state = model.state_dict()
        if not isinstance(state, dict):
            raise ConformanceError(f"state_dict() returned {_describe(state)}, not a dict")
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        try:
            loaded = torch.load(buf, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
            raise ConformanceError("state_dict() holds objects that checkpoints refuse to load "
                                   f"(only tensors, numbers, strings, lists and dicts): {first}")
        fresh = spec.factory(dict(config), shape, eng.device.device)
        fresh.load_state_dict(loaded)
        diff = compare_states(state, fresh.state_dict())
        if diff:
            raise ConformanceError(f"after load_state_dict the fresh model's state differs: "
                                   f"{diff}")
        with torch.no_grad():
            if on_folder and z is not None:
                if not torch.equal(model.sample(z), fresh.sample(z)):
                    raise ConformanceError("a fresh model that loaded the state samples "
                                           "different images")
            elif not on_folder:
                if not torch.equal(model.preview(), fresh.preview()):
                    raise ConformanceError("a fresh job that loaded the state previews a "
                                           "different image")
        add("state", PASS, f"{len(_flatten(state))} entries survive torch.save/load and "
                           "load_state_dict")
    except ConformanceError as e:
        add("state", FAIL, str(e))
    except Exception as e:  # noqa: BLE001
        add("state", FAIL, _exc_text(e))

    # declared capabilities -------------------------------------------------------------------
    try:
        add("declared", PASS, check_declared(spec, model, config, shape))
    except _DeclaredNote as e:
        add("declared", WARN, str(e))
    except ConformanceError as e:
        add("declared", FAIL, str(e))
    except Exception as e:  # noqa: BLE001
        add("declared", FAIL, _exc_text(e))

    # exact resume ----------------------------------------------------------------------------
    try:
        half = max(1, steps // 2)
        first = engine("run_b", half)
        first.prepare()
        end = first.run_loop()
        if isinstance(end, ev.Failed):
            raise ConformanceError(f"the first half stopped: {_failure_text(end)}")
        second = engine("run_b", steps, resume=True)
        second.prepare()
        if second.resumed_from is None:
            raise ConformanceError("the resumed run found no checkpoint")
        end = second.run_loop()
        if isinstance(end, ev.Failed):
            raise ConformanceError(f"the resumed run stopped: {_failure_text(end)}")
        a_rows, b_rows = _loss_rows(workdir / "run_a"), _loss_rows(workdir / "run_b")
        if [r["step"] for r in a_rows] != [r["step"] for r in b_rows]:
            raise ConformanceError(f"the resumed run logged steps {[r['step'] for r in b_rows]}, "
                                   f"the uninterrupted one {[r['step'] for r in a_rows]}")
        for ra, rb in zip(a_rows, b_rows):
            for key in sorted(set(ra) | set(rb)):
                if ra.get(key) != rb.get(key):
                    raise ConformanceError(
                        f"step {ra['step']}: '{key}' is {rb.get(key)!r} after resuming but "
                        f"{ra.get(key)!r} without a break; save every random state and counter "
                        "in state_dict() and draw noise from torch's generators")
        add("resume", PASS, f"stopped at step {half}, resumed to {steps}: identical losses")
    except ConformanceError as e:
        add("resume", FAIL, str(e))
    except Exception as e:  # noqa: BLE001
        add("resume", FAIL, _exc_text(e))

    # bf16 autocast: the default precision on CUDA GPUs and on CPUs with AMX ------------------
    if on_folder:
        try:
            bf16_steps = 2
            eng16 = Engine(spec, workdir / "run_bf16", overrides=over,
                           settings=replace(_engine_settings(bf16_steps), precision="bf16"),
                           images=images, cache_dir=workdir / "cache", plugin_version="kit")
            eng16.prepare()
            end = eng16.run_loop()
            if isinstance(end, ev.Failed):
                raise ConformanceError(
                    "under bf16 autocast (the default precision on CUDA GPUs and on CPUs with "
                    f"AMX) the engine stopped: {_failure_text(end)}; compute losses in float "
                    "(logits.float()) and run ops that lack bf16 kernels with "
                    "torch.autocast(device_type, enabled=False) and float inputs")
            rows = _loss_rows(workdir / "run_bf16")
            if [r["step"] for r in rows] != list(range(1, bf16_steps + 1)):
                raise ConformanceError(f"under bf16 autocast: expected one metrics line per "
                                       f"step 1..{bf16_steps}, got {[r['step'] for r in rows]}")
            add("bf16", PASS, f"{bf16_steps} engine steps under bf16 autocast; losses finite")
        except ConformanceError as e:
            add("bf16", FAIL, str(e))
        except Exception as e:  # noqa: BLE001
            add("bf16", FAIL, _exc_text(e))
    # the explorer: seeds, batch independence, ONNX (models that declare a latent space) -----
    if on_folder and spec.latent is not None:
        from ganstudio.testing_explore import explorer_checks
        results.extend(explorer_checks(spec, model, workdir))
    return results


# -- one plugin ----------------------------------------------------------------------------------
def _check_listener_hooks(pm: Any, info: Any, workdir: Path) -> list[CheckResult]:
    """Call a plugin's non-model hooks once with made-up values."""
    from ganstudio import hookspecs

    results = []
    run_dir = workdir / "listener_run"
    run_dir.mkdir(parents=True, exist_ok=True)
    calls = {
        "ganstudio_metrics": [dict(run_dir=str(run_dir), step=1, time=0.5,
                                   values={"loss_d": 1.25, "loss_g": 0.75}),
                              dict(run_dir=str(run_dir), step=2, time=1.0,
                                   values={"loss_d": 1.0, "loss_g": 0.5})],
        "ganstudio_run_finished": [dict(run_dir=str(run_dir), step=2, reason="completed")],
    }
    for hook_name, kwargs_list in calls.items():
        caller = getattr(pm.pm.hook, hook_name, None)
        impls = [i for i in caller.get_hookimpls() if i.plugin is info.module] if caller else []
        if not impls or not hasattr(hookspecs, hook_name):
            continue
        try:
            for kwargs in kwargs_list:
                for impl in impls:
                    impl.function(*[kwargs[a] for a in impl.argnames])
            results.append(CheckResult("", "hooks", PASS, f"{hook_name} accepted "
                                                          f"{len(kwargs_list)} call(s)"))
        except Exception as e:  # noqa: BLE001
            results.append(CheckResult("", "hooks", FAIL, f"{hook_name} raised {_exc_text(e)}"))
    return results


def resolve_target(pm: Any, name: str) -> tuple[Any, list[Any]]:
    """(PluginInfo, models to check) for a plugin name or a model id; UserError otherwise."""
    from ganstudio.core.errors import UserError

    if name in pm.plugins:
        info = pm.plugins[name]
        return info, list(info.models)
    for info in pm.plugins.values():
        for m in info.models:
            if m.id == name:
                return info, [m]
    known = ", ".join(sorted(pm.plugins)) or "none"
    raise UserError(f"no plugin or model named '{name}' (plugins: {known}); "
                    "is the package installed in this environment?")


def check_plugin(pm: Any, name: str, *, workdir: str | Path | None = None,
                 overrides: dict | None = None) -> list[CheckResult]:
    """All checks for the plugin (or the single model) called ``name``."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="ganstudio-kit-") as tmp:
            return check_plugin(pm, name, workdir=tmp, overrides=overrides)
    workdir = Path(workdir)
    info, models = resolve_target(pm, name)
    if info.status != "ok":
        return [CheckResult("", "load", FAIL, info.error or info.status)]
    n = len(info.models)
    results = [CheckResult("", "load", PASS,
                           f"{info.source} plugin '{info.name}' {info.version}".rstrip()
                           + f": plugin API {getattr(info.module, 'GANSTUDIO_PLUGIN_API', '?')}, "
                           f"{n} model{'s' if n != 1 else ''}")]
    if name in pm.plugins:
        results += _check_listener_hooks(pm, info, workdir)
    for i, spec in enumerate(models):
        results += check_model(spec, workdir=workdir / f"model{i}", module=info.module,
                               overrides=overrides)
    return results


def format_report(name: str, results: list[CheckResult]) -> str:
    lines = [f"conformance checks for '{name}'"]
    current = None
    for r in results:
        if r.model != current:
            current = r.model
            if r.model:
                lines.append(f"model {r.model}")
        lines.append(("  " if r.model else "") + r.line())
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, WARN, SKIP, FAIL)}
    verdict = "FAILED" if counts[FAIL] else "passed"
    lines.append(f"{verdict}: {counts[PASS]} passed, {counts[WARN]} passed with notes, "
                 f"{counts[SKIP]} skipped, {counts[FAIL]} failed")
    return "\n".join(lines)


def check_command(pm: Any, name: str, stream: TextIO | None = None) -> int:
    """``ganstudio plugins --check NAME``: print the report; 0 when nothing failed."""
    stream = stream or sys.stdout
    results = check_plugin(pm, name)
    print(format_report(name, results), file=stream, flush=True)
    return 0 if all(r.ok for r in results) else 1


# -- pytest integration --------------------------------------------------------------------------
class PluginConformance:
    """Subclass in a test module, set ``plugin``, and pytest runs the kit.

    ``plugin``: the plugin's entry-point name, or the plugin module itself
    (handy for a single-file plugin that is not installed).
    ``settings``: optional ``{model_id: {setting: value}}`` overrides that keep
    the models small (same as the plugin's ``GANSTUDIO_TEST_SETTINGS``).
    """

    plugin: str | ModuleType = ""
    settings: dict = {}

    @classmethod
    def _manager(cls) -> tuple[Any, str]:
        cache = cls.__dict__.get("_ganstudio_pm")
        if cache is not None:
            return cache
        from ganstudio.plugins import PluginManager

        if isinstance(cls.plugin, ModuleType):
            name = cls.plugin.__name__.rsplit(".", 1)[-1]
            pm = PluginManager(load_entry_points=False, load_folder=False,
                               extra=[(name, cls.plugin)])
        else:
            name = str(cls.plugin)
            pm = PluginManager(load_folder=False)
        cls._ganstudio_pm = (pm, name)
        return pm, name

    def test_plugin_loads(self) -> None:
        pm, name = self._manager()
        if name not in pm.plugins:
            from ganstudio.core.errors import UserError
            try:
                resolve_target(pm, name)
            except UserError as e:
                raise ConformanceError(str(e)) from None
        info = pm.plugins[name]
        assert info.status == "ok", f"plugin '{name}' did not load: {info.error}"

    def test_model_conforms(self, ganstudio_model_id: str | None, tmp_path: Path) -> None:
        import pytest

        if ganstudio_model_id is None:
            pytest.skip("the plugin registers no models")
        pm, name = self._manager()
        info = pm.plugins.get(name)
        spec = next(m for m in pm.models() if m.id == ganstudio_model_id)
        results = check_model(spec, workdir=tmp_path, module=info.module if info else None,
                              overrides=(self.settings or {}).get(spec.id))
        failed = [r for r in results if r.status == FAIL]
        if failed:
            raise ConformanceError("\n" + format_report(spec.id, results))
        build = next(r for r in results if r.name == "build")
        if build.status == SKIP:
            pytest.skip(build.detail)


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrize ``ganstudio_model_id`` for PluginConformance subclasses only."""
    if "ganstudio_model_id" not in metafunc.fixturenames:
        return
    cls = metafunc.cls
    if cls is None or not issubclass(cls, PluginConformance):
        return
    pm, name = cls._manager()
    info = pm.plugins.get(name)
    ids = [m.id for m in info.models] if info is not None and info.status == "ok" else []
    if not ids:
        metafunc.parametrize("ganstudio_model_id", [None], ids=["no-models"])
    else:
        metafunc.parametrize("ganstudio_model_id", ids, ids=ids)
