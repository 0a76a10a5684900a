"""Exploring and using a trained run from the command line:
``seeds``, ``video``, ``project``, ``nearest``, ``best`` and ``export``.

Each works on any run whose model declares a latent space (``export`` also on
models without one); the work is done by the Qt-free modules in
``ganstudio.core`` (latents, loops, projection, memorisation, best, exporting).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ganstudio.cli.command import Command
from ganstudio.cli.exits import EXIT_OK
from ganstudio.cli.messages import older_checkpoint_warning, shown
from ganstudio.cli.progress import CountProgress


def _run_options(p: argparse.ArgumentParser, checkpoint: bool = True) -> None:
    p.add_argument("--run", required=True, help="run folder")
    if checkpoint:
        p.add_argument("--checkpoint", default="last", metavar="best|last|STEP",
                       help="checkpoint to use (default: last; best after 'ganstudio best')")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def _explorer(args: argparse.Namespace) -> Any:
    from ganstudio.cli.sample import device_for
    from ganstudio.core.latents import load_explorer
    from ganstudio.plugins import get_plugin_manager
    pm = get_plugin_manager(args.plugins_dir)
    return load_explorer(args.run, pm, device_for(args.device), args.checkpoint,
                         warn=lambda p, why: print(older_checkpoint_warning(p, why),
                                                   file=sys.stderr))


def _writable(path: str | Path) -> Path:
    from ganstudio.core.exporting import check_writable
    return check_writable(path)


def _png_out(path: str) -> Path:
    from ganstudio.core.errors import UserError
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UserError(f"-o {shown(out)}: the grid is written as PNG; name it .png")
    return _writable(out)


# -- seeds ----------------------------------------------------------------------------------------
def configure_seeds(p: argparse.ArgumentParser) -> None:
    _run_options(p)
    p.add_argument("--seeds", default="0-63", help="seeds, e.g. 0-63 or 3,17,42 (default 0-63)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="pull samples toward the mean (Gaussian latents; 1 = off, e.g. 0.7)")
    p.add_argument("--columns", type=int, default=None, help="images per row")
    p.add_argument("--no-labels", action="store_true",
                   help="no seed number under each sample")
    p.add_argument("-o", "--out", required=True, help="the grid, a .png file")


def cmd_seeds(args: argparse.Namespace) -> int:
    from ganstudio.core.images import make_grid, save_png
    from ganstudio.core.latents import parse_seeds
    seeds = parse_seeds(args.seeds)
    out = _png_out(args.out)
    explorer = _explorer(args)
    images = explorer.seed_images(seeds, psi=args.truncation)
    labels = None if args.no_labels else [str(seed) for seed in seeds]
    # cells of at least 64 px: a 32 px run's samples and their labels stay readable
    save_png(make_grid(images, nrow=args.columns, min_cell=64, labels=labels), out)
    first, last = seeds[0], seeds[-1]
    print(f"wrote {len(seeds)} samples (seeds {first}..{last} in reading order, step "
          f"{explorer.step}) to {shown(out)}")
    return EXIT_OK


# -- video ----------------------------------------------------------------------------------------
def configure_video(p: argparse.ArgumentParser) -> None:
    _run_options(p)
    p.add_argument("--seeds", default=None,
                   help="points of the loop: seeds and/or latent files from 'ganstudio project', "
                        "e.g. 3,17,42 or 3,out/photo.npy")
    p.add_argument("--random-walk", type=int, default=0, metavar="N",
                   help="a loop through N random points instead of --seeds")
    p.add_argument("--walk-seed", type=int, default=0, help="seed of the random walk")
    p.add_argument("--seconds", type=float, default=8.0, help="length (default 8)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="truncation (Gaussian latents; 1 = off)")
    p.add_argument("--size", type=int, default=256, help="frame size in pixels (default 256)")
    p.add_argument("--ease", action="store_true", help="slow down at each point")
    p.add_argument("-o", "--out", required=True, help="the loop, .mp4 or .gif")


def cmd_video(args: argparse.Namespace) -> int:
    from ganstudio.core.errors import UserError
    from ganstudio.core.latents import parse_keys, random_latents
    from ganstudio.core.loops import check_video_path, render_loop
    out = check_video_path(args.out)
    if (args.seeds is None) == (args.random_walk <= 0):
        raise UserError("give the loop's points with --seeds, or --random-walk N")
    if args.random_walk and args.random_walk < 2:
        raise UserError("--random-walk needs at least 2 points")
    if not 8 <= args.size <= 4096:
        raise UserError("--size must be between 8 and 4096 pixels")
    explorer = _explorer(args)
    if args.seeds is not None:
        keys, labels = parse_keys(args.seeds, explorer.dim, explorer.distribution)
        if keys.shape[0] < 2:
            raise UserError("a loop needs at least two points (e.g. --seeds 3,17)")
    else:
        keys = random_latents(args.random_walk, explorer.dim, explorer.distribution,
                              args.walk_seed)
        labels = [f"random point {i}" for i in range(args.random_walk)]
    progress = CountProgress("frames")
    result = render_loop(explorer, keys, out, seconds=args.seconds, fps=args.fps,
                         psi=args.truncation, size=args.size, ease=args.ease, progress=progress)
    progress.finish()
    print(f"wrote a {args.seconds:g} s loop ({result.frames} frames at {args.fps:g} fps, "
          f"{args.size} px) through {len(labels)} points to {shown(result.path)} "
          f"in {result.seconds:.1f} s")
    return EXIT_OK


# -- project --------------------------------------------------------------------------------------
def configure_project(p: argparse.ArgumentParser) -> None:
    _run_options(p)
    p.add_argument("picture", help="the picture to find in the model")
    p.add_argument("-o", "--out", required=True, help="folder for the results")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    p.add_argument("--starts", type=int, default=4, help="starting points (default 4)")
    p.add_argument("--pin", action="store_true",
                   help="also pin the result in the run for the studio's explorer")


def cmd_project(args: argparse.Namespace) -> int:
    import torch
    from ganstudio.core.errors import UserError
    from ganstudio.core.images import make_grid, save_png
    from ganstudio.core.latents import save_latent
    from ganstudio.core.projection import load_picture, project, random_baseline
    if args.steps < 1 or args.starts < 1:
        raise UserError("--steps and --starts must be at least 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"-o {shown(out)} exists and is not a folder")
    _writable(out / ".probe")
    explorer = _explorer(args)
    c, h, _w = explorer.image_shape()
    target = load_picture(args.picture, c, h)
    progress = CountProgress("projection steps")
    result = project(explorer, target, steps=args.steps, starts=args.starts,
                     progress=lambda s, n, img, err: progress(s, n, f"error {err:.4f}"))
    progress.finish()
    baseline = random_baseline(explorer, target, n=256)
    stem = Path(args.picture).stem or "picture"
    try:
        save_png(make_grid(result.image, nrow=1, padding=0), out / f"{stem}_projected.png")
        save_png(make_grid(torch.cat([target, result.image]), nrow=2, min_cell=128),
                 out / f"{stem}_compare.png")
        latent = save_latent(out / f"{stem}.npy", result.z)
        (out / f"{stem}.json").write_text(json.dumps({
            "picture": str(Path(args.picture).resolve()), "error": result.error,
            "best_of_256_random_latents": baseline, "steps": result.steps,
            "starts": result.starts, "checkpoint_step": explorer.step}, indent=1))
    except OSError as e:
        raise UserError(f"cannot write {shown(e.filename or out)}: {e.strerror or e}") from None
    if args.pin:
        _pin_projection(args.run, latent, stem)
    print(f"projected {shown(args.picture)}: error {result.error:.4f} (pixel MSE, 0..1; the best "
          f"of 256 random latents: {baseline:.4f})")
    print(f"wrote {shown(out / (stem + '_projected.png'))}, {stem}_compare.png and the latent "
          f"{shown(latent)} (use it with 'ganstudio video --seeds 3,{shown(latent)}')")
    return EXIT_OK


def _pin_projection(run: str, latent: Path, label: str) -> None:
    import shutil
    from ganstudio.core.explore_state import FOLDER, pin_latent
    folder = Path(run) / FOLDER
    folder.mkdir(exist_ok=True)
    target = folder / latent.name
    shutil.copyfile(latent, target)
    pin_latent(run, f"{FOLDER}/{latent.name}", label)


# -- nearest --------------------------------------------------------------------------------------
def configure_nearest(p: argparse.ArgumentParser) -> None:
    _run_options(p)
    p.add_argument("--n", type=int, default=256, help="samples to compare (default 256)")
    p.add_argument("--show", type=int, default=16,
                   help="pairs in the picture, closest first (default 16)")
    p.add_argument("--feature", choices=("pixels", "random"), default="pixels",
                   help="distance on downscaled pixels (default) or on random conv features")
    p.add_argument("-o", "--out", required=True, help="sample / nearest training image pairs, .png")


def cmd_nearest(args: argparse.Namespace) -> int:
    from ganstudio.core.images import save_png
    from ganstudio.core.memorisation import pairs_grid, run_nearest_check
    from ganstudio.plugins import get_plugin_manager
    from ganstudio.cli.sample import device_for
    out = _png_out(args.out)
    pm = get_plugin_manager(args.plugins_dir)
    result, samples, train = run_nearest_check(args.run, pm, args.n, feature=args.feature,
                                               device=device_for(args.device),
                                               checkpoint=args.checkpoint)
    save_png(pairs_grid(samples, train, result, n=max(1, args.show)), out)
    print(f"{result.closer} of {result.n_samples} samples closer to a training image than "
          f"training images are to each other ({result.n_train} training images, "
          f"{result.feature} distance)")
    print(f"wrote the {min(args.show, result.n_samples)} closest pairs (sample left, training "
          f"image right) to {shown(out)}")
    return EXIT_OK


# -- best -----------------------------------------------------------------------------------------
def configure_best(p: argparse.ArgumentParser) -> None:
    _run_options(p, checkpoint=False)
    p.add_argument("--samples", type=int, default=256, help="samples per checkpoint (default 256)")
    p.add_argument("--features", choices=("random", "auto", "inception"), default="random",
                   help="KID features (default: random, the engine's download-free ones)")


def cmd_best(args: argparse.Namespace) -> int:
    from ganstudio.core.best import score_checkpoints
    from ganstudio.plugins import get_plugin_manager
    from ganstudio.cli.sample import device_for
    from ganstudio.cli.messages import warning_line
    pm = get_plugin_manager(args.plugins_dir)
    progress = CountProgress("checkpoints")
    t0 = time.monotonic()
    scores = score_checkpoints(args.run, pm, n_samples=args.samples, features=args.features,
                               device=device_for(args.device),
                               progress=lambda d, n, step: progress(d, n, f"step {step}"),
                               note=lambda m: print(warning_line(m), file=sys.stderr))
    progress.finish()
    for step, why in sorted(scores.skipped.items()):
        print(warning_line(f"step {step} not scored: {why}"), file=sys.stderr)
    print(f"KID ({scores.features} features, {args.samples} samples each, lower is better):")
    for step in sorted(scores.kid):
        mark = "  <- best" if step == scores.best_step else ""
        print(f"  step {step:>8}  {scores.kid[step]:.5f}{mark}")
    print(f"best checkpoint: step {scores.best_step}; kept through checkpoint rotation; use it "
          f"with --checkpoint best ({time.monotonic() - t0:.1f} s)")
    return EXIT_OK


# -- export ---------------------------------------------------------------------------------------
def configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder")
    p.add_argument("--format", choices=("onnx", "safetensors", "pt"), default=None,
                   help="file format (default: from the file name)")
    p.add_argument("--checkpoint", default="last", metavar="best|last|STEP",
                   help="checkpoint to export (default: last)")
    p.add_argument("-o", "--out", required=True, help="the file to write")


def cmd_export(args: argparse.Namespace) -> int:
    from ganstudio.core.exporting import export_run
    from ganstudio.plugins import get_plugin_manager
    pm = get_plugin_manager(args.plugins_dir)
    r = export_run(args.run, pm, args.out, args.format, args.checkpoint)
    if r.format == "onnx":
        shape = ("latent (batch, dim) -> image (batch, C, H, W) in [0, 1]" if r.kind == "generator"
                 else "input (batch, 3, H, W) in [0, 1] -> output, same shape")
        print(f"wrote {shown(r.path)} (ONNX, step {r.step}): {shape}; checked in onnxruntime "
              f"against torch, largest difference {r.max_abs_diff:.1e}")
    else:
        print(f"wrote the generator's weights (step {r.step}) as {r.format} to {shown(r.path)}")
    return EXIT_OK


SEEDS = Command("seeds", "a grid of samples from chosen seeds", configure_seeds, cmd_seeds)
VIDEO = Command("video", "a seamless loop (MP4 or GIF) through seeds or projected pictures",
                configure_video, cmd_video)
PROJECT = Command("project", "find the latent that reproduces a picture", configure_project,
                  cmd_project)
NEAREST = Command("nearest", "memorisation check: samples beside their nearest training images",
                  configure_nearest, cmd_nearest)
BEST = Command("best", "KID of each kept checkpoint; marks the best one", configure_best,
               cmd_best)
EXPORT = Command("export", "export the trained network as ONNX, safetensors or pt",
                 configure_export, cmd_export)
COMMANDS = (SEEDS, VIDEO, PROJECT, NEAREST, BEST, EXPORT)
