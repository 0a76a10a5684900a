"""``ganstudio sample``: draw samples from a trained run, as one grid or as files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ganstudio.cli.command import Command
from ganstudio.cli.exits import EXIT_OK
from ganstudio.cli.messages import older_checkpoint_warning, shown

_OTHER_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--n", type=int, default=64, help="number of samples (default 64)")
    p.add_argument("--out", required=True, help="a .png file (one grid) or a folder")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def device_for(name: str) -> Any:
    from ganstudio.core.devices import pick_device
    return pick_device(name, precision="fp32").device


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
        raise UserError(f"--out {shown(out)}: a grid is written as PNG; name it .png, or give a "
                        "folder for separate images")
    if not as_grid and out.exists() and not out.is_dir():
        raise UserError(f"{shown(out)} exists and is not a folder")
    pm = get_plugin_manager(args.plugins_dir)
    spec, model, state = load_trained(
        args.run, pm, device=device_for(args.device),
        warn=lambda p, why: print(older_checkpoint_warning(p, why), file=sys.stderr))
    if spec.kind != "gan":
        raise UserError(f"run {shown(args.run)} is a '{spec.id}' job; it has no generator to "
                        "sample")
    images = generate(model, args.n, args.seed)
    try:
        if as_grid:
            save_png(make_grid(images), out)
            print(f"wrote a grid of {args.n} samples (step {state.get('step')}) to {shown(out)}")
        else:
            out.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(tensor_to_pils(images)):
                img.save(out / f"sample_{i:05d}.png")
            print(f"wrote {args.n} samples (step {state.get('step')}) to {shown(out)}/")
    except OSError as e:
        raise UserError(f"cannot write {shown(e.filename or out)}: {e.strerror or e}") from None
    return EXIT_OK


SAMPLE = Command("sample", "draw samples from a trained run", configure, cmd_sample)
