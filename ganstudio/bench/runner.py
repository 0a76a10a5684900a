"""``ganstudio bench``: every measurement in one run, one report.

The report is a plain dict (written as JSON with ``--json``) and a few
printed lines. Parts that cannot run here (no studio worker, no style model,
no PySide6) are reported as ``{"skipped": reason}``, never silently left out.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

PARTS = ("dataset", "classic", "loader", "engine", "large", "gui", "style", "startup", "oom")


@dataclass
class BenchOptions:
    data: str | None = None          # a folder of the user's images; None: generate one
    images: int = 10_000             # generated folder: number of JPEGs
    image_size: int = 64             # generated folder: side of each JPEG
    resolution: int = 64
    batch_size: int = 128
    device: str = "auto"
    workers: tuple[int, ...] = (2,)
    steps: int | None = None         # timed steps per run (None: chosen by device)
    warmup_steps: int | None = None
    # fp32 (the classic loop's precision) and the engine's default ("auto": bf16 on CUDA
    # GPUs and on CPUs with AMX, fp32 elsewhere; run once when it resolves to fp32).
    engine_precisions: tuple[str, ...] = ("fp32", "auto")
    large_batch: int = 0             # >0: also the engine at this batch, bf16 + channels_last
    large_precision: str = "bf16"
    features: int = 64               # DCGAN g_features / d_features
    style_size: int | None = None       # None: 512 on a GPU, 128 on a CPU
    style_iterations: int | None = None  # None: 300 on a GPU, 20 on a CPU
    repeats: int = 1                 # rounds of classic + engine, alternating; best kept
    monitors: bool = False           # the engine's balance alarm and KID/FID during timing
    skip: tuple[str, ...] = ()
    workdir: str | None = None
    keep: bool = False
    json_path: str | None = None
    quiet: bool = False

    def wants(self, part: str) -> bool:
        return part not in self.skip


@dataclass
class Report:
    data: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    json_path: str | None = None

    def say(self, line: str) -> None:
        self.lines.append(line)
        if self.echo:
            self.echo(line)
        self.save()

    def save(self) -> None:
        """Write the report so far (a crash later loses only the parts not yet run)."""
        if not self.json_path:
            return
        path = Path(self.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**self.data, "lines": self.lines}, indent=2, default=str))
        os.replace(tmp, path)


def _steps_for(device_type: str, opts: BenchOptions) -> tuple[int, int]:
    if opts.steps is not None:
        warm = opts.warmup_steps if opts.warmup_steps is not None else max(1, opts.steps // 10)
        return int(opts.steps), int(warm)
    if device_type == "cuda":
        return 300, 30
    return 10, 2


def _ratio(a: float | None, b: float | None) -> float | None:
    if not a or not b:
        return None
    return a / b


def _classic_root(data: Path, work: Path) -> Path:
    """ImageFolder wants class sub-folders: link the user's folder as the one class."""
    root = work / "classic-root"
    link = root / "images"
    if link.is_symlink():
        if link.resolve() == data.resolve():
            return root
        link.unlink()                    # a work folder reused for another --data folder
    root.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(data.resolve(), target_is_directory=True)
    except OSError:
        return data  # no symlinks here (some Windows set-ups): the folder must have sub-folders
    return root


def _resolved_precision(precision: str, device: str) -> str:
    """What ``precision`` means on ``device``: ``auto`` becomes fp32 or bf16."""
    if precision != "auto":
        return precision
    from ganstudio.core.devices import pick_device
    return pick_device(device, precision="auto").precision


def _distinct_precisions(precisions: tuple[str, ...], device: str) -> list[str]:
    """``precisions`` without those that resolve to one already listed."""
    seen: set[str] = set()
    out = []
    for p in precisions:
        resolved = _resolved_precision(p, device)
        if resolved not in seen:
            seen.add(resolved)
            out.append(p)
    return out


def _engine_label(precision: str, device: str, batch_size: int) -> str:
    if precision == "auto":
        return f"engine default ({_resolved_precision(precision, device)}) b{batch_size}"
    return f"engine {precision} b{batch_size}"


def run_benchmark(opts: BenchOptions, echo: Callable[[str], None] | None = print) -> dict:
    """Run the parts asked for and return the report dict (also written to ``json_path``)."""
    import torch

    from ganstudio.core.config import resolve_config
    from ganstudio.core.devices import pick_device
    from ganstudio.core.errors import UserError
    from ganstudio.plugins import get_plugin_manager

    from . import classic, engine_runs, folder as bench_folder
    from .reference import reference_model

    rep = Report(echo=None if opts.quiet else echo, json_path=opts.json_path)
    work = Path(opts.workdir) if opts.workdir else Path(tempfile.mkdtemp(prefix="ganstudio-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    choice = pick_device(opts.device, precision="fp32")
    dev = choice.device
    steps, warm = _steps_for(dev.type, opts)
    rep.data.update({
        "device": choice.name, "device_type": dev.type,
        "torch": torch.__version__, "python": platform.python_version(),
        "host_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {"resolution": opts.resolution, "batch_size": opts.batch_size,
                     "features": opts.features, "steps": steps, "warmup_steps": warm,
                     "workers": list(opts.workers), "large_batch": opts.large_batch,
                     "repeats": opts.repeats, "engine_monitors": opts.monitors},
    })
    rep.say(f"device: {choice.name}; torch {torch.__version__}; "
            f"{os.cpu_count()} CPU(s); {steps} timed steps after {warm} warm-up steps")

    if not opts.monitors:
        rep.say("engine: balance alarm and KID/FID measures off while timing, as the classic "
                "loop has none (--monitors keeps them on)")
    pm = get_plugin_manager()
    # The model a plugin offers for the comparison, with the settings of the classic
    # example's recipe, so both sides train exactly the same networks the same way.
    ref = reference_model(pm)
    spec = pm.get_model(ref.model_id)
    base: dict[str, Any] = dict(ref.settings(resolution=opts.resolution,
                                             batch_size=opts.batch_size,
                                             features=opts.features))
    rep.data["settings"]["model_settings"] = dict(base)
    cache = work / "cache"

    try:
        # -- the folder ------------------------------------------------------------------------
        if opts.data:
            data = Path(opts.data).expanduser()
            if not data.is_dir():
                raise UserError(f"benchmark data folder not found: {data}")
            classic_root = _classic_root(data, work)
            rep.data["folder"] = {"path": str(data), "generated": False}
        else:
            data, gen_s = bench_folder.make_jpeg_folder(work / "folder", opts.images,
                                                        opts.image_size)
            classic_root = data
            rep.data["folder"] = {"path": str(data), "generated": True, "images": opts.images,
                                  "image_size": opts.image_size, "generate_s": round(gen_s, 3)}
            rep.say(f"folder: {opts.images} generated {opts.image_size} px JPEGs in {data}"
                    + (f" ({gen_s:.1f} s to write)" if gen_s else " (reused)"))

        # -- dataset preparation and reopening ----------------------------------------------------
        if opts.wants("dataset"):
            t = engine_runs.time_dataset(data, opts.resolution, cache)
            rep.data["dataset"] = t.to_dict()
            rep.say(f"dataset: {t.images} images prepared at {t.resolution} px in "
                    f"{t.prepare_s:.2f} s; reopened in {t.reopen_s:.3f} s")
        # -- the classic loop and the engine, alternating when repeated ------------------------
        # On a shared machine the load changes from minute to minute: alternating the two and
        # keeping the best round of each compares them under the same conditions.
        cfg = resolve_config(spec.schema, base)
        classic_runs: list[dict] = []
        engine_runs_all: list[dict] = []
        rounds = max(1, int(opts.repeats))
        for rnd in range(rounds):
            tag = f" [round {rnd + 1}/{rounds}]" if rounds > 1 else ""
            if opts.wants("classic"):
                for w in opts.workers:
                    r = classic.run_classic(classic_root, spec, cfg, dev, ref.networks,
                                            workers=w, steps=steps,
                                            warmup_steps=warm,
                                            sample_dir=work / "classic-samples")
                    classic_runs.append(r.to_dict())
                    rep.say(f"classic loop, {w} workers, batch {r.batch_size}: "
                            f"{r.images_per_s:,.1f} images/s{tag}")
            todo = []
            if opts.wants("engine"):
                todo += [(_engine_label(p, opts.device, opts.batch_size), base, p, f"run-{p}")
                         for p in _distinct_precisions(opts.engine_precisions, opts.device)]
            if opts.large_batch and opts.wants("large"):
                todo.append((f"engine {opts.large_precision} channels_last b{opts.large_batch}",
                             dict(ref.settings(resolution=opts.resolution,
                                               batch_size=opts.large_batch,
                                               features=opts.features, channels_last=True)),
                             opts.large_precision, "run-large"))
            for label, over, prec, folder_name in todo:
                r = engine_runs.run_engine(
                    spec, data, work / folder_name, label=label, overrides=over,
                    device=opts.device, precision=prec, steps=steps, warmup_steps=warm,
                    cache_dir=cache, monitors=opts.monitors)
                engine_runs_all.append(r.to_dict())
                rep.say(f"{r.label}: {r.images_per_s:,.1f} images/s{tag}"
                        + ("" if r.outcome == "completed" else f" ({r.outcome}: {r.message})"))
        # -- the classic loop's loader alone: is the classic loop bound by it? -----------------
        if opts.wants("loader") and opts.wants("classic"):
            loaders = []
            for w in opts.workers:
                lr = _guarded(lambda w=w: classic.measure_loader(
                    classic_root, opts.resolution, opts.batch_size, workers=w,
                    batches=max(steps + warm, 2)), rep, "loader")
                loaders.append(lr)
                if "images_per_s" in lr:
                    rep.say(f"classic loader alone (no training), {w} workers: "
                            f"{lr['images_per_s']:,.1f} images/s")
            rep.data["loader"] = loaders
        classic_results = _best(classic_runs, "workers")
        engine_results = _best(engine_runs_all, "label")
        rep.data["classic"] = classic_results
        rep.data["engine"] = engine_results
        if rounds > 1:
            for c in classic_results:
                rep.say(f"best of {rounds}: classic loop, {c['workers']} workers: "
                        f"{c['images_per_s']:,.1f} images/s")
            for e in engine_results:
                rep.say(f"best of {rounds}: {e['label']}: {e['images_per_s']:,.1f} images/s")

        # -- ratios ------------------------------------------------------------------------------
        ratios: dict[str, float] = {}
        # The studio trains at the default precision: the GUI part repeats that run.
        at_batch = [e for e in engine_results if e["batch_size"] == opts.batch_size]
        headline = next((e for e in at_batch if e["label"].startswith("engine default")),
                        at_batch[0] if at_batch else None)
        for c in classic_results:
            for e in engine_results:
                ratio = _ratio(e["images_per_s"], c["images_per_s"])
                if ratio is None:
                    continue
                key = f"{e['label']} / classic {c['workers']} workers"
                ratios[key] = round(ratio, 3)
                rep.say(f"ratio {key}: {ratio:.2f}x")
        for c in classic_results:
            alone = next((lr for lr in rep.data.get("loader", [])
                          if lr.get("workers") == c["workers"] and lr.get("images_per_s")), None)
            share = _ratio(c["images_per_s"], alone["images_per_s"] if alone else None)
            if share is not None:
                ratios[f"classic {c['workers']} workers / its loader alone"] = round(share, 3)
                rep.say(f"classic loop, {c['workers']} workers, trains at {share:.0%} of the "
                        "rate its loader alone delivers")
        rep.data["ratios"] = ratios

        # -- optional parts ----------------------------------------------------------------------
        if opts.wants("gui"):
            rep.data["gui"] = _guarded(lambda: _gui_part(spec, data, work, base, opts, steps,
                                                         warm, cache, headline), rep, "gui")
            g = rep.data["gui"]
            if "images_per_s" in g:
                rep.say(f"studio worker: {g['images_per_s']:,.1f} images/s; ratio studio/headless: "
                        f"{g['ratio_vs_headless'] or 0:.2f}x; GUI heartbeat longest stall: "
                        f"{g['longest_stall_ms']:.1f} ms "
                        f"({g['longest_stall_training_ms']:.1f} ms while training)")
        if opts.wants("style"):
            rep.data["style"] = _guarded(lambda: _style_part(pm, work, opts, dev.type), rep,
                                         "style")
            st = rep.data["style"]
            if "iterations_per_s" in st:
                rep.say(f"style transfer {st['size']} px: {st['iterations_per_s']:.1f} "
                        f"iterations/s; {st['iterations']} iterations to a result in "
                        f"{st['time_to_result_s']:.2f} s" + (f" ({st['note']})" if st.get("note")
                                                             else ""))
        if opts.wants("startup"):
            from .startup import measure_startup
            rep.data["startup"] = _guarded(measure_startup, rep, "startup")
            st = rep.data["startup"]
            if "startup_seconds" in st:
                rep.say(f"studio window: visible after {st['startup_seconds']:.2f} s "
                        f"(process {st['process_seconds']:.2f} s)")
        if opts.wants("oom") and dev.type == "cuda":
            rep.data["oom"] = _guarded(lambda: _oom_part(spec, data, work, base, opts, cache),
                                       rep, "oom")
            o = rep.data["oom"]
            if "outcome" in o:
                rep.say(f"out-of-memory check (batch 65536 at 128 px): {o['outcome']}: "
                        f"{o['message'] or 'no message'}"
                        + ("" if o["clear_message"] else " [NOT the expected clear message]"))
    finally:
        rep.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        rep.save()
        if not opts.keep and not opts.workdir:
            shutil.rmtree(work, ignore_errors=True)
    rep.data["lines"] = rep.lines
    return rep.data


def _best(runs: list[dict], key: str) -> list[dict]:
    """One entry per ``key`` (first-seen order): the fastest round, with every round's figure."""
    best: dict[Any, dict] = {}
    for r in runs:
        k = r[key]
        rounds = best[k]["rounds_images_per_s"] if k in best else []
        rounds.append(round(r["images_per_s"], 3))
        if k not in best or r["images_per_s"] > best[k]["images_per_s"]:
            best[k] = dict(r)
        best[k]["rounds_images_per_s"] = rounds
    return list(best.values())


def _guarded(fn: Callable[[], dict], rep: Report, part: str) -> dict:
    """Run an optional part; its failure is reported, and the rest of the benchmark goes on."""
    t0 = time.perf_counter()
    try:
        out = fn()
        out["part_s"] = round(time.perf_counter() - t0, 3)
    except Exception as e:  # noqa: BLE001 - one broken part must not lose the others
        out = {"error": f"{e.__class__.__name__}: {e}", "traceback": traceback.format_exc()}
        rep.say(f"{part}: failed: {e.__class__.__name__}: {e}")
        return out
    if "skipped" in out:
        rep.say(f"{part}: skipped: {out['skipped']}")
    return out


def _gui_part(spec, data, work, base, opts, steps, warm, cache, headline) -> dict:
    """The studio worker between two headless runs of the same settings, compared with
    their mean: the machine's load drifts less over three neighbouring runs."""
    from . import engine_runs
    from .gui import _available, measure_gui
    if headline is None or not _available("PySide6"):
        return measure_gui(spec, data, work, base, device=opts.device, steps=steps,
                           warmup_steps=warm, cache_dir=cache, headless=headline,
                           monitors=opts.monitors)

    def headless() -> dict:
        r = engine_runs.run_engine(
            spec, data, work / "run-headless", label="headless", overrides=base,
            device=opts.device, precision=headline["precision"], steps=steps,
            warmup_steps=warm, cache_dir=cache, monitors=opts.monitors)
        return r.to_dict()

    before = headless()
    out = measure_gui(spec, data, work, base, device=opts.device, steps=steps,
                      warmup_steps=warm, cache_dir=cache, headless=before,
                      monitors=opts.monitors)
    if "images_per_s" not in out:
        return out
    after = headless()
    runs = [before["images_per_s"], after["images_per_s"]]
    mean = sum(runs) / 2
    out["headless_runs_images_per_s"] = runs
    out["headless_images_per_s"] = mean
    out["ratio_vs_headless"] = out["images_per_s"] / mean if mean > 0 else None
    return out


def _style_part(pm, work, opts, device_type: str) -> dict:
    from .style import measure_style
    gpu = device_type == "cuda"
    size = opts.style_size or (512 if gpu else 128)
    iterations = opts.style_iterations or (300 if gpu else 20)
    return measure_style(pm, work, size=size, iterations=iterations, device=opts.device)


def _oom_part(spec, data, work, base, opts, cache) -> dict:
    """Ask for far more than the GPU holds: the engine must fail with a clear suggestion."""
    from . import engine_runs
    over = dict(base, resolution=128, batch_size=65536)
    r = engine_runs.run_engine(spec, data, work / "run-oom", label="oom check", overrides=over,
                               device=opts.device, precision="fp32", steps=2, warmup_steps=0,
                               cache_dir=cache)
    ok = r.outcome == "failed" and "batch_size=" in r.message
    return {"outcome": r.outcome, "message": r.message, "clear_message": ok}
