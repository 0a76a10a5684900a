"""One model through the real engine: build, steps, samples, state, declared
capabilities, exact resume and bf16 (see the package's documentation)."""
from __future__ import annotations

import io
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from .checks import (_DeclaredNote, _flatten, check_declared, check_images, check_schema,
                     check_step_output, compare_states)
from .inputs import tiny_images, tiny_overrides
from .results import (FAIL, KIT_IMAGES, KIT_STEPS, PASS, SKIP, TEST_SETTINGS_ATTR, WARN,
                      _GAN_METHODS, _JOB_METHODS, CheckResult, ConformanceError, _describe,
                      _exc_text, _failure_text)

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
        from ganstudio.testing.explore import explorer_checks
        results.extend(explorer_checks(spec, model, workdir))
    return results
