"""``ganstudio sample``: draw samples from a trained run, as one grid or as files.

A grid is one image held in memory, so it has a limit (``GRID_MAX_SAMPLES``
samples and ``GRID_MAX_SIDE`` pixels a side). Separate files have none: they
are drawn, written and dropped ``BATCH`` at a time, with progress, so memory
stays bounded whatever ``--n`` is.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ganstudio.cli.command import Command
from ganstudio.cli.exits import EXIT_OK
from ganstudio.cli.messages import older_checkpoint_warning, shown, user_file

_OTHER_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
GRID_MAX_SAMPLES = 1024          # 32 x 32 cells
GRID_MAX_SIDE = 8192             # pixels: a 192 MB RGB image at most
BATCH = 64
SEED_MAX = 2**64 - 1             # torch generators take 64-bit seeds


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--n", type=int, default=64,
                   help=f"number of samples (default 64; a grid holds at most "
                        f"{GRID_MAX_SAMPLES}, a folder any number)")
    p.add_argument("--out", required=True, help="a .png file (one grid) or a folder")
    p.add_argument("--seed", type=int, default=None,
                   help=f"random seed, 0 to {SEED_MAX} (default: a new one each time)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--quiet", action="store_true", help="no progress while writing files")


def device_for(name: str) -> Any:
    from ganstudio.core.devices import pick_device
    return pick_device(name, precision="fp32").device


def cmd_sample(args: argparse.Namespace) -> int:
    from ganstudio.core.errors import UserError
    from ganstudio.core.inference import load_trained
    from ganstudio.plugins import get_plugin_manager

    if args.n < 1:
        raise UserError("--n must be at least 1")
    if args.seed is not None and not 0 <= args.seed <= SEED_MAX:
        raise UserError(f"--seed must be between 0 and {SEED_MAX}, got {args.seed}")
    out = Path(args.out)
    as_grid = out.suffix.lower() == ".png"
    if not as_grid and out.suffix.lower() in _OTHER_IMAGE_SUFFIXES:
        raise UserError(f"--out {shown(out)}: a grid is written as PNG; name it .png, or give a "
                        "folder for separate images")
    if not as_grid and out.exists() and not out.is_dir():
        raise UserError(f"{shown(out)} exists and is not a folder")
    if as_grid and out.is_dir():
        raise UserError(f"{shown(out)} is a folder; give a .png file name for a grid, or the "
                        "folder without .png for separate images")
    if as_grid and args.n > GRID_MAX_SAMPLES:
        raise UserError(_too_big(args.n, f"at most {GRID_MAX_SAMPLES} samples"))
    pm = get_plugin_manager(args.plugins_dir)
    spec, model, state = load_trained(
        args.run, pm, device=device_for(args.device),
        warn=lambda p, why: print(older_checkpoint_warning(p, why), file=sys.stderr))
    if spec.kind != "gan":
        raise UserError(f"run {shown(args.run)} is a '{spec.id}' job; it has no generator to "
                        "sample")
    step = state.get("step")
    if as_grid:
        _write_grid(model, args.n, args.seed, out)
        print(f"wrote a grid of {args.n} samples (step {step}) to {shown(out)}")
    else:
        _write_files(model, args.n, args.seed, out, quiet=args.quiet)
        print(f"wrote {args.n} samples (step {step}) to {shown(out)}/")
    return EXIT_OK


def _too_big(n: int, limit: str) -> str:
    return (f"--n {n} is too many for one grid ({limit}); give a folder as --out to write "
            "them as separate files")


def _write_grid(model: Any, n: int, seed: int | None, out: Path) -> None:
    from ganstudio.core.errors import UserError
    from ganstudio.core.images import make_grid, save_png
    from ganstudio.core.inference import generate

    shape = getattr(model, "image_shape", None)
    if shape is not None:
        cols = math.ceil(math.sqrt(n))
        side = cols * (max(int(shape[-1]), int(shape[-2])) + 2)
        if side > GRID_MAX_SIDE:
            most = (GRID_MAX_SIDE // (max(int(shape[-1]), int(shape[-2])) + 2)) ** 2
            raise UserError(_too_big(n, f"at {shape[-1]} px, at most {most} samples fit in "
                                        f"{GRID_MAX_SIDE} px a side"))
    images = generate(model, n, seed)
    try:
        save_png(make_grid(images), out)
    except OSError as e:
        raise UserError(f"cannot write {shown(out)}: {e.strerror or e}") from None


def _write_files(model: Any, n: int, seed: int | None, out: Path, *, quiet: bool) -> None:
    """Draw, write and drop BATCH samples at a time: memory does not grow with n."""
    import torch
    from ganstudio.cli.progress import CountProgress
    from ganstudio.core.errors import UserError
    from ganstudio.core.images import tensor_to_pils

    g = torch.Generator()
    g.manual_seed(seed if seed is not None else torch.seed() % (2**63))
    progress = CountProgress("writing samples", quiet=quiet)
    digits = max(5, len(str(n - 1)))   # names sort in order
    path = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        for start in range(0, n, BATCH):
            with torch.no_grad():
                z = model.make_latents(min(BATCH, n - start), g)
                images = model.sample(z).float().cpu()
            for i, img in enumerate(tensor_to_pils(images), start):
                path = out / f"sample_{i:0{digits}d}.png"
                img.save(path, format="PNG")
            progress(min(start + BATCH, n), n)
    except OSError as e:
        raise UserError(f"cannot write {shown(user_file(e.filename or path))}: "
                        f"{e.strerror or e}") from None
    finally:
        progress.finish()


SAMPLE = Command("sample", "draw samples from a trained run", configure, cmd_sample)
