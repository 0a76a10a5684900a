"""The ``ganstudio`` command: the studio (no subcommand) and headless subcommands.

User errors (missing folder, unknown model, bad --set, no checkpoint) exit
with code 2 and one line on stderr; a run that fails in training exits 1.
Further subcommands live in their own modules listed in ``_EXTRA_COMMANDS``;
each has ``add_parser(subparsers)`` and sets ``func`` on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ganstudio.core.units import format_duration

# Before torch is imported (OpenMP reads it once): idle OpenMP threads sleep instead of
# spinning. With the default (spin) policy, training from the main thread on a 2-core CPU
# burned 29-43 ms of CPU per image against 22-23 ms with this (DCGAN, 64 px); the spinning
# threads compete with the working ones. A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_EXTRA_COMMANDS = ("ganstudio.cli_stylize", "ganstudio.cli_bench", "ganstudio.cli_plugin",
                   "ganstudio.cli_compare")


class ConsoleProgress:
    """Engine listener printing a progress bar (TTY) or periodic lines (logs)."""

    def __init__(self, stream=None, *, every_s: float = 10.0, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every_s = 0.2 if self.tty else every_s
        self.quiet = quiet
        self._last = 0.0
        self._ips = 0.0

    def __call__(self, event: Any) -> None:
        from ganstudio.core import events as ev
        out = self.stream
        if isinstance(event, ev.Started):
            verb = "resuming" if event.resumed else "training"
            print(f"{verb} {event.model_id} on {event.device} ({event.device_reason}) "
                  f"from step {event.step} to {event.total_steps}; run folder {event.run_dir}",
                  file=out, flush=True)
        elif isinstance(event, ev.Metrics):
            self._ips = event.images_per_sec if self._ips == 0 else (
                0.8 * self._ips + 0.2 * event.images_per_sec)
            now = time.monotonic()
            if self.quiet or (now - self._last < self.every_s and event.step < event.total_steps):
                return
            self._last = now
            frac = event.step / max(event.total_steps, 1)
            steps_per_s = event.step / event.time if event.time > 0 else 0
            eta = (event.total_steps - event.step) / steps_per_s if steps_per_s else float("inf")
            losses = " ".join(f"{k}={v:.3g}" for k, v in list(event.values.items())[:4])
            bar = "#" * int(frac * 24)
            line = (f"[{bar:<24}] {event.step}/{event.total_steps} "
                    f"{self._ips:,.0f} img/s ETA {format_duration(eta)} {losses}")
            if self.tty:
                print("\r" + line[:150].ljust(150), end="", file=out, flush=True)
            else:
                print(line, file=out, flush=True)
        elif isinstance(event, ev.Warning):
            self._newline()
            print(f"warning: {event.message}", file=out, flush=True)
        elif isinstance(event, ev.CheckpointWritten) and not self.tty:
            print(f"checkpoint written: {event.path}", file=out, flush=True)
        elif isinstance(event, ev.Finished):
            self._newline()
            print(f"{event.reason} at step {event.step}; checkpoint {event.checkpoint}",
                  file=out, flush=True)
        elif isinstance(event, ev.Failed):
            self._newline()

    def _newline(self) -> None:
        if self.tty:
            print(file=self.stream)


# -- subcommands ---------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from ganstudio.core.config import parse_set_args
    from ganstudio.core.engine import Engine, EngineSettings
    from ganstudio.core import events as ev
    from ganstudio.core.errors import UserError
    from ganstudio.core.runs import RunFolder
    from ganstudio.plugins import get_plugin_manager

    pm = get_plugin_manager(args.plugins_dir)
    overrides = parse_set_args(args.set)
    run = RunFolder(args.out)
    model_id = args.model
    if model_id is None:
        if args.resume and run.exists():
            model_id = run.read_info()["model_id"]
        else:
            raise UserError("--model is required (see 'ganstudio plugins' for the installed models)")
    spec = pm.get_model(model_id)
    if args.resume and not run.exists():
        if args.data is None:
            raise UserError(f"nothing to resume: {run.path} is not a run folder")
        # Killed before run.json was written (or never started): --resume with --model and
        # --data always works, so a restart script needs no special case.
        print(f"nothing to resume in {run.path} yet; starting a new run", file=sys.stderr)
    from ganstudio.core.model import FOLDER_KINDS
    if spec.kind not in FOLDER_KINDS:
        raise UserError(f"model '{spec.id}' is not trained on a folder; use 'ganstudio stylize'")
    if args.data is None and not args.resume:
        raise UserError("--data DIR is required (the folder of training images)")
    if args.data is not None and not Path(args.data).expanduser().is_dir():
        if Path(args.data).expanduser().exists():
            raise UserError(f"--data must be a folder of images, not a file: {args.data}")
        raise UserError(f"image folder not found: {args.data}")
    total = args.steps
    if total is None:
        total = int(run.read_info().get("total_steps", 10_000)) if run.exists() else 10_000
    if total < 1:
        raise UserError(f"--steps must be at least 1, got {total}")
    settings = EngineSettings(
        total_steps=total, device=args.device, precision=args.precision, on_nan="stop",
        checkpoint_every_s=args.checkpoint_every, sample_every_s=args.sample_every,
        keep_checkpoints=args.keep_checkpoints,
        checkpoint_every_steps=args.checkpoint_steps, sample_every_steps=args.sample_steps,
        log_every_steps=args.log_steps, monitors=not args.no_monitors,
        alarm_every_steps=args.alarm_steps, quality_every_steps=args.quality_steps)
    progress = ConsoleProgress(quiet=args.quiet)
    engine = Engine(spec, args.out, data_folder=args.data, overrides=overrides,
                    settings=settings, resume=args.resume,
                    listeners=[progress, pm.metrics_listener(str(run.path))],
                    plugin_version=pm.plugin_version(spec))

    def prep_progress(done: int, total_files: int) -> None:
        if not args.quiet:
            print(f"\rpreparing images: {done}/{total_files}", end="", file=sys.stderr, flush=True)

    engine.prepare(progress=prep_progress)
    if engine.report is not None:
        print(("\r" if not args.quiet else "") + "dataset: " + engine.report.summary(),
              file=sys.stderr)
        for line in engine.report.lines(limit=50)[1:]:  # skipped and converted files
            if not line.startswith("warning: "):  # dataset warnings arrive as events
                print(f"  {line}", file=sys.stderr)

    interrupted = {"n": 0}

    def on_sigint(signum, frame):
        interrupted["n"] += 1
        if interrupted["n"] == 1:
            print("\nstopping after this step and writing a checkpoint "
                  "(Ctrl-C again to abort without one)", file=sys.stderr, flush=True)
            engine.stop()
        else:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, on_sigint)
    old_term = signal.signal(signal.SIGTERM, on_sigint)
    try:
        result = engine.run_loop()
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, old_term)
    if isinstance(result, ev.Failed):
        print(f"error: {result.message}", file=sys.stderr)
        if result.suggestion:
            sets = " ".join(f"--set {item}" for item in result.suggestion.split())
            import shlex
            print(f"to continue: ganstudio train --resume --out {shlex.quote(args.out)} {sets}",
                  file=sys.stderr)
        if result.traceback:
            print(f"(traceback in {engine.run.events_path})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from ganstudio.core.errors import UserError
    from ganstudio.core.images import make_grid, save_png, tensor_to_pils
    from ganstudio.core.inference import generate, load_trained
    from ganstudio.plugins import get_plugin_manager

    if args.n < 1:
        raise UserError("--n must be at least 1")
    out = Path(args.out)
    as_grid = out.suffix.lower() == ".png"
    if not as_grid and out.suffix.lower() in _OTHER_IMAGE_SUFFIXES:
        raise UserError(f"--out {out}: a grid is written as PNG; name it .png, or give a folder "
                        "for separate images")
    if not as_grid and out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    pm = get_plugin_manager(args.plugins_dir)
    spec, model, state = load_trained(
        args.run, pm, device=_device_for(args.device),
        warn=lambda p, why: print(f"warning: {why}; using an older checkpoint", file=sys.stderr))
    if spec.kind != "gan":
        raise UserError(f"run {args.run} is a '{spec.id}' job; it has no generator to sample")
    images = generate(model, args.n, args.seed)
    try:
        if as_grid:
            save_png(make_grid(images), out)
            print(f"wrote a grid of {args.n} samples (step {state.get('step')}) to {out}")
        else:
            out.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(tensor_to_pils(images)):
                img.save(out / f"sample_{i:05d}.png")
            print(f"wrote {args.n} samples (step {state.get('step')}) to {out}/")
    except OSError as e:
        raise UserError(f"cannot write {e.filename or out}: {e.strerror or e}") from None
    return EXIT_OK


_OTHER_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def _device_for(name: str) -> Any:
    from ganstudio.core.devices import pick_device
    return pick_device(name, precision="fp32").device


def cmd_plugins(args: argparse.Namespace) -> int:
    from ganstudio.plugins import get_plugin_manager
    pm = get_plugin_manager(args.plugins_dir)
    if getattr(args, "check", None):
        from ganstudio.testing import check_command  # provided by the conformance kit
        return check_command(pm, args.check)
    print(f"plugin folder: {pm.plugins_dir}")
    if not pm.plugins:
        print("no plugins found")
    for name, info in sorted(pm.plugins.items()):
        version = f" {info.version}" if info.version else ""
        print(f"{name}{version} [{info.source}] {info.status}")
        if info.error:
            print(f"    error: {info.error}")
        for m in info.models:
            print(f"    model {m.id} ({m.kind}): {m.name}")
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    from ganstudio.core.errors import UserError
    data = getattr(args, "data", None)
    if data is not None and not Path(data).expanduser().is_dir():
        raise UserError(f"image folder not found: {data}")
    if getattr(args, "autostart", False) and data is None and not getattr(args, "run", None):
        raise UserError("--autostart needs --data DIR (or --run RUN to resume)")
    try:
        from ganstudio.gui.app import run_studio
    except ImportError as e:
        raise UserError(f"the studio needs PySide6 and pyqtgraph ({e}); "
                        "pip install PySide6-Essentials pyqtgraph") from None
    return run_studio(args)


# -- parser --------------------------------------------------------------------------------------
def add_gui_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="folder of training images")
    p.add_argument("--model", help="model id (see 'ganstudio plugins')")
    p.add_argument("--run", help="run folder to open or create")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model setting (repeatable)")
    p.add_argument("--autostart", action="store_true", help="start training at once")
    p.add_argument("--steps", type=int, default=None, help="total training steps")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (bf16 where it is faster), fp32 or bf16")
    p.add_argument("--runs-root", default=None, metavar="DIR",
                   help="folder where new runs are created and the run browser looks")
    p.add_argument("--theme", choices=("dark", "light"), default=None,
                   help="colour theme (default: dark, or the last one chosen)")


def build_parser() -> argparse.ArgumentParser:
    from ganstudio import __version__
    parser = argparse.ArgumentParser(
        prog="ganstudio",
        description="GAN Studio: train generative models on your own images. "
                    "Without a subcommand the studio window opens.")
    parser.add_argument("--version", action="version", version=f"ganstudio {__version__}")
    parser.add_argument("--plugins-dir", default=None,
                        help="folder of single-file plugins (default: the user data folder; "
                             "or $GANSTUDIO_PLUGINS_DIR)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train a model headless on a folder of images")
    p.add_argument("--model", help="model id, e.g. dcgan")
    p.add_argument("--data", help="folder of training images (searched recursively)")
    p.add_argument("--out", required=True, help="run folder to write (or resume)")
    p.add_argument("--steps", type=int, default=None,
                   help="total steps of the run (resume continues up to it; default 10000)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model setting, e.g. --set lr_d=1e-4 (repeatable)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.add_argument("--precision", default="auto", help="auto (default), fp32 or bf16")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--checkpoint-every", type=float, default=120.0, metavar="SECONDS",
                   help="seconds between checkpoints (default 120)")
    p.add_argument("--checkpoint-steps", type=int, default=0, metavar="N",
                   help="also checkpoint every N steps")
    p.add_argument("--sample-every", type=float, default=5.0, metavar="SECONDS",
                   help="seconds between sample grids (default 5)")
    p.add_argument("--sample-steps", type=int, default=0, metavar="N",
                   help="save a sample grid every N steps instead")
    p.add_argument("--log-steps", type=int, default=0, metavar="N",
                   help="also log metrics every N steps (default: every 100 ms)")
    p.add_argument("--keep-checkpoints", type=int, default=3, metavar="N",
                   help="checkpoints to keep (default 3)")
    p.add_argument("--alarm-steps", type=int, default=0, metavar="N",
                   help="check for collapse / imbalance every N steps (default: every 20 s)")
    p.add_argument("--quality-steps", type=int, default=0, metavar="N",
                   help="measure KID / FID every N steps (default: every 120 s)")
    p.add_argument("--no-monitors", action="store_true",
                   help="no collapse / imbalance alarm and no KID / FID")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="a .png file (one grid) or a folder")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("plugins", help="list plugins, their models and status")
    p.add_argument("--check", metavar="NAME", help="run the conformance checks on a plugin")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("gui", help="open the studio window")
    add_gui_arguments(p)
    p.set_defaults(func=cmd_gui)

    for modname in _EXTRA_COMMANDS:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue
            raise
        mod.add_parser(sub)
    # --plugins-dir is also accepted after the subcommand ("ganstudio plugins --plugins-dir X");
    # SUPPRESS keeps a value given before the subcommand.
    for subparser in sub.choices.values():
        if "--plugins-dir" not in subparser._option_string_actions:
            subparser.add_argument("--plugins-dir", default=argparse.SUPPRESS,
                                   help="folder of single-file plugins")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ganstudio.core.errors import UserError
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.data = args.model = args.run = None
        args.set, args.autostart, args.steps, args.device = [], False, None, "auto"
        args.func = cmd_gui
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\naborted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. "ganstudio plugins | head -1": the reader left early
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
