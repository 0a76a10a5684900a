"""The benchmark's command line: ``ganstudio bench`` and ``python -m ganstudio.bench``.

The classic DCGAN loop against the studio engine, and more. This module owns the
options and the command; ``ganstudio``'s command table lists ``configure`` and
``cmd_bench`` under the name ``bench``, and ``python -m ganstudio.bench`` runs
``main`` without the rest of the command line.

Only argparse is imported here: this module is loaded every time ``ganstudio``
starts (the studio included), so the benchmark itself is imported on use. It
never imports ``ganstudio.cli`` (the bench stands alone on a bare GPU server).
"""
from __future__ import annotations

import argparse
import sys


HELP = "measure the engine against the classic DCGAN loop"
DESCRIPTION = ("Train the same DCGAN the classic way (ImageFolder + DataLoader workers, "
               ".item() every step) and with the studio engine on the same folder, and "
               "print images/s of each and their ratio; also the studio worker, the "
               "GUI heartbeat, style transfer, dataset preparation and window start-up.")


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, not {text!r}")
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers >= 0, not {text!r}")
    return values


def _name_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip().lower() for v in text.split(",") if v.strip())


def configure(p: argparse.ArgumentParser) -> None:
    """The options of ``ganstudio bench`` (also used by ``python -m ganstudio.bench``)."""
    p.add_argument("--data", metavar="DIR",
                   help="folder of images to train on (default: generate --images JPEGs)")
    p.add_argument("--images", type=int, default=10_000,
                   help="number of JPEGs in the generated folder (default 10000)")
    p.add_argument("--image-size", type=int, default=64,
                   help="side in pixels of the generated JPEGs (default 64)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.add_argument("--resolution", type=int, default=64, help="training resolution (default 64)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--features", type=int, default=64,
                   help="DCGAN width (g_features = d_features; default 64, the classic one)")
    p.add_argument("--workers", type=_int_list, default=(2,), metavar="N[,N...]",
                   help="loader workers of the classic loop, e.g. 2,8 (default 2)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per run (default: 300 on a GPU, 10 on a CPU)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps before them (default: a tenth of --steps)")
    p.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="rounds of classic loop and engine, alternating; the best of each "
                        "is kept (steadier figures on a busy machine; default 1)")
    p.add_argument("--monitors", action="store_true",
                   help="keep the engine's balance alarm and KID/FID measures on while timing "
                        "(off by default: the classic loop measures neither)")
    p.add_argument("--precision", type=_name_list, default=("fp32", "auto"),
                   metavar="P[,P...]",
                   help="engine precision(s) at --batch: fp32, bf16, auto (default fp32,auto: "
                        "the classic loop's fp32 and the engine's default, which is bf16 on "
                        "CUDA GPUs and on CPUs with AMX; run once where auto means fp32)")
    p.add_argument("--large-batch", type=int, default=0, metavar="N",
                   help="also run the engine at batch N in bf16 with channels_last")
    p.add_argument("--style-size", type=int, default=None,
                   help="style transfer size in px (default: 512 on a GPU, 128 on a CPU)")
    p.add_argument("--style-iterations", type=int, default=None,
                   help="style transfer iterations (default: 300 on a GPU, 20 on a CPU)")
    p.add_argument("--skip", type=_name_list, default=(), metavar="PART[,PART...]",
                   help="parts to leave out: dataset, classic, loader, engine, large, gui, "
                        "style, startup, oom")
    p.add_argument("--workdir", metavar="DIR",
                   help="where the folder, cache and runs go (kept; default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def options_from_args(args: argparse.Namespace):
    from ganstudio.bench.runner import PARTS, BenchOptions
    from ganstudio.core.errors import UserError

    unknown = [s for s in args.skip if s not in PARTS]
    if unknown:
        raise UserError(f"unknown part(s) for --skip: {', '.join(unknown)} "
                        f"(choose from {', '.join(PARTS)})")
    for name in ("images", "image_size", "batch", "features", "style_size",
                 "style_iterations"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.repeats < 1:
        raise UserError("--repeats must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise UserError("--steps must be at least 1")
    bad = [p for p in args.precision if p not in ("fp32", "bf16", "auto")]
    if bad:
        raise UserError(f"unknown precision {bad[0]!r} (fp32, bf16, auto)")
    return BenchOptions(
        data=args.data, images=args.images, image_size=args.image_size,
        resolution=args.resolution, batch_size=args.batch, device=args.device,
        workers=tuple(args.workers), steps=args.steps, warmup_steps=args.warmup,
        engine_precisions=tuple(args.precision), large_batch=args.large_batch,
        repeats=args.repeats, monitors=args.monitors,
        features=args.features, style_size=args.style_size,
        style_iterations=args.style_iterations, skip=tuple(args.skip), workdir=args.workdir,
        keep=args.keep, json_path=args.json, quiet=args.quiet)


def cmd_bench(args: argparse.Namespace) -> int:
    from ganstudio.bench.runner import run_benchmark
    opts = options_from_args(args)
    if getattr(args, "plugins_dir", None):
        from ganstudio.plugins import get_plugin_manager
        get_plugin_manager(args.plugins_dir)   # the benchmark then uses this manager
    run_benchmark(opts, echo=lambda line: print(line, flush=True))
    if args.json and not args.quiet:
        print(f"report written to {args.json}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m ganstudio.bench``: the same options as ``ganstudio bench``."""
    from ganstudio.core.errors import UserError

    parser = argparse.ArgumentParser(prog="python -m ganstudio.bench", description=DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_bench(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
