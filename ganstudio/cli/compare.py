"""``ganstudio compare-presets``: train presets side by side on the same data and score them.

The evidence behind the DCGAN defaults: each preset (by default ``classic``
then ``default``) trains for the same number of steps on the same folder,
with the same seed and any shared ``--set`` overrides, through the normal
engine (so the collapse / imbalance alarm runs too). Then each run's
averaged generator (if any) draws ``--samples`` images from the same latents
and gets three figures:

- ``diversity``: mean pairwise feature distance of the samples divided by
  that of the real images (1.0 = as varied as the data; near 0 = collapse);
- ``KID`` and ``FID`` against the real images (lower is better), with
  Inception features when the weights are on disk, else the download-free
  random-feature network (see :mod:`ganstudio.core.quality`).

Runs are written as ordinary run folders under ``--out``; a summary is
printed and saved as ``OUT/compare.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ganstudio.cli.command import Command
from ganstudio.cli.exits import EXIT_FAILED, EXIT_OK
from ganstudio.cli.messages import error_line, shown


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="folder of training images")
    p.add_argument("--steps", type=int, default=500, help="training steps per preset (default 500)")
    p.add_argument("--out", default="compare-presets",
                   help="folder for the runs and compare.json (default ./compare-presets)")
    p.add_argument("--model", default=None,
                   help="model id (default: the installed GAN that has presets, when only "
                        "one has them)")
    p.add_argument("--presets", default="classic,default",
                   help="comma list of presets (default classic,default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="setting applied to every preset, e.g. --set resolution=32")
    p.add_argument("--samples", type=int, default=500,
                   help="samples per preset for the scores (default 500)")
    p.add_argument("--features", default="auto", choices=["auto", "inception", "random"],
                   help="feature network for the scores (default auto)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.add_argument("--precision", default="auto", help="auto (default), fp32 or bf16")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _the_model_with_presets(pm: Any) -> str:
    from ganstudio.core.errors import UserError
    ids = [m.id for m in pm.models() if m.kind == "gan" and m.field("preset") is not None]
    if len(ids) != 1:
        found = f"these have them: {', '.join(ids)}" if ids else "none is installed"
        raise UserError(f"choose the model with --model ({found})")
    return ids[0]


def score_model(model: Any, real: Any, extractor: Any, n_samples: int, seed: int = 12345
                ) -> dict[str, float]:
    """Diversity ratio, KID and FID of ``model``'s samples against ``real`` images."""
    import torch
    from ganstudio.core.quality import fid, kid, mean_pairwise_distance

    g = torch.Generator().manual_seed(seed)
    chunks = []
    with torch.no_grad():
        for i in range(0, n_samples, 128):
            z = model.make_latents(min(128, n_samples - i), g)
            chunks.append(model.sample(z).float())
    fake_f = extractor.features(torch.cat(chunks))
    real_f = extractor.features(real)
    n_div = min(256, fake_f.shape[0], real_f.shape[0])
    real_div = mean_pairwise_distance(real_f[:n_div])
    return {
        "diversity": round(mean_pairwise_distance(fake_f[:n_div]) / real_div, 4) if real_div else 0.0,
        "kid": round(kid(real_f, fake_f), 5),
        "fid": round(fid(real_f, fake_f), 3),
    }


def cmd_compare(args: argparse.Namespace) -> int:
    from ganstudio.cli.progress import ConsoleProgress
    from ganstudio.core import events as ev
    from ganstudio.core.config import parse_set_args
    from ganstudio.core.engine import Engine, EngineSettings
    from ganstudio.core.errors import UserError
    from ganstudio.core.quality import make_extractor
    from ganstudio.plugins import get_plugin_manager

    if args.steps < 1:
        raise UserError("--steps must be at least 1")
    if args.samples < 2:
        raise UserError("--samples must be at least 2")
    if not Path(args.data).expanduser().is_dir():
        raise UserError(f"image folder not found: {shown(args.data)}")
    pm = get_plugin_manager(getattr(args, "plugins_dir", None))
    spec = pm.get_model(args.model or _the_model_with_presets(pm))
    if spec.kind != "gan":
        raise UserError(f"model '{spec.id}' is not trained on a folder")
    preset_field = spec.field("preset")
    if preset_field is None:
        raise UserError(f"model '{spec.id}' has no presets to compare")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    for p in presets:
        preset_field.validate(p)
    shared = parse_set_args(args.set)
    if "preset" in shared:
        raise UserError("--set preset=... is not allowed here; use --presets")
    out = Path(args.out)
    for p in presets:
        if (out / p).exists() and any((out / p).iterdir()):
            raise UserError(f"{out / p} already exists; choose another --out or remove it")

    results: list[dict[str, Any]] = []
    extractor = None
    for preset in presets:
        warnings: list[dict[str, Any]] = []

        def collect(event: Any, _w=warnings) -> None:
            if isinstance(event, ev.Warning) and event.kind in ("collapse", "imbalance"):
                _w.append({"step": event.step, "kind": event.kind, "message": event.message})

        settings = EngineSettings(
            total_steps=args.steps, device=args.device, precision=args.precision,
            on_nan="stop", checkpoint_every_s=0, log_every_s=1.0,
            sample_every_steps=max(1, args.steps // 10),
            alarm_every_steps=max(10, args.steps // 25), quality_every_s=0)
        listeners = [collect] + ([] if args.quiet else [ConsoleProgress(every_s=15.0)])
        engine = Engine(spec, out / preset, data_folder=args.data,
                        overrides={**shared, "preset": preset}, settings=settings,
                        listeners=listeners, plugin_version=pm.plugin_version(spec))
        engine.prepare()
        t0 = time.perf_counter()
        result = engine.run_loop()
        seconds = time.perf_counter() - t0
        if isinstance(result, ev.Failed):
            print(error_line(f"preset {preset}: {result.message}"), file=sys.stderr)
            return EXIT_FAILED
        if extractor is None:
            extractor = make_extractor(args.features, engine.device.device,
                                       on_note=lambda m: print(f"note: {m}", file=sys.stderr))
        real = engine.data.real_sample(min(len(engine.data), args.samples))
        scores = score_model(engine.model, real, extractor, args.samples)
        results.append({"preset": preset, "steps": engine.step, "seconds": round(seconds, 1),
                        **scores, "warnings": warnings, "run": str(engine.run.path),
                        "device": engine.device.name})

    summary = {"data": str(Path(args.data).resolve()), "model": spec.id, "steps": args.steps,
               "overrides": shared, "features": getattr(extractor, "name", "?"),
               "results": results}
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(summary, indent=2))
    print(format_table(summary))
    print(f"runs and compare.json in {shown(out)}")
    return EXIT_OK


def format_table(summary: dict[str, Any]) -> str:
    feats = summary.get("features", "?")
    lines = [f"{summary['model']} presets, {summary['steps']} steps each, "
             f"scores with {feats} features (diversity: 1.0 = as varied as the data; "
             "KID/FID: lower is better)",
             f"{'preset':<10} {'diversity':>9} {'KID':>9} {'FID':>9} {'s/step':>7}  alarm"]
    for r in summary["results"]:
        kinds = ", ".join(f"{w['kind']}@{w['step']}" for w in r["warnings"]) or "quiet"
        per_step = r["seconds"] / max(r["steps"], 1)
        lines.append(f"{r['preset']:<10} {r['diversity']:>9.3f} {r['kid']:>9.4f} "
                     f"{r['fid']:>9.2f} {per_step:>7.3f}  {kinds}")
    return "\n".join(lines)


COMPARE_PRESETS = Command(
    "compare-presets",
    "train model presets side by side on one folder and report diversity, KID, FID",
    configure, cmd_compare)
