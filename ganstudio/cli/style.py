"""``ganstudio stylize`` and ``ganstudio stylize-train``: style transfer from the command line.

* ``stylize CONTENT STYLE [STYLE ...] -o OUT``: the optimisation method, run by
  the engine (a temporary run folder unless ``--run DIR`` keeps it);
* ``stylize --net RUN INPUT [INPUT ...] -o OUT``: apply a trained fast style
  network to images and/or folders (:mod:`ganstudio.core.feedforward`);
* ``stylize-train STYLE --data DIR --out RUN``: train such a network (the same
  as ``ganstudio train`` with that model, through the same ``run_training``).

The models are found by their declared kind (image-to-image job, feed-forward
network), never by id, and used only through the declared interfaces
(``ImageJob.result()`` / ``status()``, a feed-forward model's ``sample``).

User errors (missing or unreadable image, wrong VGG weights, bad setting)
exit with code 2 and one line; a failure during the optimisation exits 1.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ganstudio.cli.command import Command
from ganstudio.cli.messages import error_line, older_checkpoint_warning, shown

IMAGE_JOB = "an image-to-image job"
FEEDFORWARD_NET = "a feed-forward network trained on a folder"



def model_of_kind(pm: Any, kind: str, wanted: str | None, what: str) -> Any:
    """The installed model of ``kind`` (``--model ID`` picks one when several are);
    UserError saying what is installed otherwise. No model id is written here: the
    command works with whichever plugin offers the kind."""
    from ganstudio.core.errors import UserError
    if wanted:
        spec = pm.get_model(wanted)
        if spec.kind != kind:
            raise UserError(f"model '{spec.id}' is not {what} (its kind is '{spec.kind}')")
        return spec
    found = pm.models(kind=kind)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"no {what} is installed (see 'ganstudio plugins')")
    raise UserError(f"several models are {what}: {', '.join(s.id for s in found)}; "
                    "choose one with --model")


def configure_stylize(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IMAGE",
                   help="CONTENT STYLE [STYLE ...]; with --net: images and/or folders")
    p.add_argument("-o", "--out", required=True,
                   help="output image (.png/.jpg); with --net and several inputs: a folder")
    p.add_argument("--size", type=int, default=None, metavar="PX",
                   help="long side of the output in pixels (default 512; with --net: the "
                        "input's own size)")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="optimisation iterations (default 300)")
    p.add_argument("--blend", default=None, metavar="W1,W2,...",
                   help="blend weights of several styles (default equal)")
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default=None,
                   help="optimiser (default lbfgs)")
    p.add_argument("--preserve-colors", action="store_true",
                   help="keep the content image's colours (luminance-only transfer)")
    p.add_argument("--init", choices=["content", "noise"], default=None,
                   help="start from the content image (default) or from noise")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any style transfer setting, e.g. --set style_weight=1e5 (repeatable)")
    p.add_argument("--vgg-weights", default=None, metavar="PATH",
                   help="VGG-19 weights file with torchvision's key names (default: "
                        "torchvision's ImageNet file in the torch cache)")
    p.add_argument("--net", default=None, metavar="RUN",
                   help="apply the trained fast style network of this run folder instead")
    p.add_argument("--run", default=None, metavar="DIR",
                   help="keep the optimisation's run folder (previews, metrics) here")
    p.add_argument("--model", default=None, metavar="ID",
                   help="the image-to-image model to use when several are installed")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def configure_stylize_train(t: argparse.ArgumentParser) -> None:
    t.add_argument("style", metavar="STYLE", help="the style image")
    t.add_argument("--data", required=True, help="folder of content pictures")
    t.add_argument("--out", required=True, help="run folder to write (or resume)")
    t.add_argument("--steps", type=int, default=None, help="training steps (default 10000)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="network setting, e.g. --set resolution=256 (repeatable)")
    t.add_argument("--vgg-weights", default=None, metavar="PATH", help="VGG-19 weights file")
    t.add_argument("--model", default=None, metavar="ID",
                   help="the feed-forward model to train when several are installed")
    t.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


# -- the optimisation ----------------------------------------------------------------------------
def _check_output(out: Path) -> None:
    from ganstudio.core.errors import UserError
    from ganstudio.core.image_files import WRITABLE_EXTENSIONS
    if out.suffix.lower() not in WRITABLE_EXTENSIONS:
        raise UserError(f"output {shown(out)}: give an image file name ending in .png, .jpg, .webp, "
                        ".bmp or .tif")
    if out.is_dir():
        raise UserError(f"output {shown(out)} is a folder; give an image file name")


def cmd_stylize(args: argparse.Namespace) -> int:
    if args.net:
        return _apply_net(args)
    from ganstudio.cli.progress import StyleProgress
    from ganstudio.core import events as ev
    from ganstudio.core.config import parse_set_args
    from ganstudio.core.engine import Engine, EngineSettings
    from ganstudio.core.errors import UserError
    from ganstudio.core.image_files import write_image
    from ganstudio.core.model import IMAGE_TO_IMAGE
    from ganstudio.plugins import get_plugin_manager

    pm = get_plugin_manager(args.plugins_dir)
    spec = model_of_kind(pm, IMAGE_TO_IMAGE, args.model, IMAGE_JOB)
    if len(args.inputs) < 2:
        raise UserError("give a content image and at least one style image "
                        "(ganstudio stylize CONTENT STYLE [STYLE ...] -o OUT)")
    out = Path(args.out).expanduser()
    _check_output(out)
    content, styles = args.inputs[0], args.inputs[1:]
    for role, path in [("content", content)] + [("style", s) for s in styles]:
        if Path(path).expanduser().is_dir():
            raise UserError(f"the {role} image {shown(path)} is a folder; give an image file")
        if not Path(path).expanduser().is_file():
            raise UserError(f"{role} image not found: {shown(path)}")
        if "|" in path:
            raise UserError(f"{role} image path {shown(path)} contains '|', which separates "
                            "styles")
    overrides: dict[str, Any] = parse_set_args(args.set)
    overrides.update(content=str(Path(content).expanduser()),
                     style="|".join(str(Path(s).expanduser()) for s in styles))
    if args.size is not None:
        overrides["size"] = args.size
    if args.steps is not None:
        overrides["iterations"] = args.steps
    for key, value in (("style_blend", args.blend), ("optimizer", args.optimizer),
                       ("init", args.init), ("vgg_weights", args.vgg_weights)):
        if value is not None:
            overrides[key] = value
    if args.preserve_colors:
        overrides["preserve_colors"] = True

    from ganstudio.core.config import resolve_config
    total = int(resolve_config(spec.schema, overrides)["iterations"])
    run_dir = Path(args.run).expanduser() if args.run else Path(tempfile.mkdtemp(prefix="stylize-"))
    settings = EngineSettings(total_steps=total, device=args.device, precision="fp32",
                              on_nan="stop", checkpoint_every_s=0, sample_every_s=10.0,
                              keep_checkpoints=1, n_samples=1)
    engine = Engine(spec, run_dir, overrides=overrides, settings=settings,
                    listeners=[StyleProgress(args.quiet)], plugin_version=pm.plugin_version(spec))
    try:
        t0 = time.perf_counter()
        engine.prepare()
        stopped = {"n": 0}

        def on_sigint(signum, frame):
            stopped["n"] += 1
            if stopped["n"] > 1:
                raise KeyboardInterrupt
            print("\nstopping; the best image so far will be written", file=sys.stderr)
            engine.stop()

        old = signal.signal(signal.SIGINT, on_sigint)
        try:
            result = engine.run_loop()
        finally:
            signal.signal(signal.SIGINT, old)
        if isinstance(result, ev.Failed):
            print(error_line(result.message), file=sys.stderr)
            return 1
        # the declared ImageJob surface: result() in [-1, 1], status() for its counters
        image = ((engine.model.result().detach().float() + 1) / 2).clamp(0, 1)
        write_image(image, out)
        seconds = time.perf_counter() - t0
        h, w = image.shape[-2:]
        evaluations = engine.model.status().get("evaluations")
        counted = f", {int(evaluations)} loss evaluations" if evaluations is not None else ""
        note = "" if result.reason == "completed" else " (stopped early: best so far)"
        print(f"wrote {shown(out)} ({w}x{h}, {engine.step} iterations{counted}, "
              f"{seconds:.1f} s){note}")
        return 0
    finally:
        if not args.run:
            shutil.rmtree(run_dir, ignore_errors=True)


def _apply_net(args: argparse.Namespace) -> int:
    from ganstudio.core.devices import pick_device
    from ganstudio.core.errors import UserError
    from ganstudio.core.feedforward import apply_to_paths, load_feedforward
    from ganstudio.plugins import get_plugin_manager

    if args.size is not None and not 16 <= args.size <= 8192:
        raise UserError("--size must be between 16 and 8192 pixels")
    device = pick_device(args.device, precision="fp32").device
    _spec, model, step = load_feedforward(
        args.net, get_plugin_manager(args.plugins_dir), device,
        warn=lambda p, why: print(older_checkpoint_warning(p, why), file=sys.stderr))

    def progress(i: int, n: int, path: Path) -> None:
        if not args.quiet:
            print(f"[{i}/{n}] {shown(path)}", file=sys.stderr, flush=True)

    written, ms = apply_to_paths(model, args.inputs, args.out, args.size, progress)
    print(f"stylized {len(written)} image(s) with {shown(args.net)} (step {step}) on "
          f"{device.type}: {ms:.1f} ms per image (network only)")
    return 0


def cmd_stylize_train(args: argparse.Namespace) -> int:
    from ganstudio.cli.train import TrainRequest, run_training
    from ganstudio.core.errors import UserError
    from ganstudio.core.model import FEEDFORWARD
    from ganstudio.plugins import get_plugin_manager
    spec = model_of_kind(get_plugin_manager(args.plugins_dir), FEEDFORWARD, args.model,
                         FEEDFORWARD_NET)
    if not Path(args.style).expanduser().is_file():
        raise UserError(f"style image not found: {shown(args.style)}")
    sets = [f"style={Path(args.style).expanduser()}"]
    if args.vgg_weights:
        sets.append(f"vgg_weights={Path(args.vgg_weights).expanduser()}")
    return run_training(TrainRequest(
        out=args.out, model=spec.id, data=args.data, steps=args.steps,
        set=sets + list(args.set), device=args.device, resume=args.resume, quiet=args.quiet,
        plugins_dir=args.plugins_dir))


STYLIZE = Command(
    "stylize", "repaint pictures in the style of others (or apply a trained network)",
    configure_stylize, cmd_stylize,
    description="Repaint CONTENT in the style of STYLE (several styles are blended), or, "
                "with --net RUN, apply a trained fast style network to images or folders.")
STYLIZE_TRAIN = Command(
    "stylize-train", "train a fast style network for one style on a folder of pictures",
    configure_stylize_train, cmd_stylize_train,
    description="Train a feed-forward style network (e.g. Johnson et al.'s) for STYLE on "
                "the content pictures in --data; then use 'ganstudio stylize --net RUN'.")
