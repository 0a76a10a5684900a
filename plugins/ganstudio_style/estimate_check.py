"""How close the studio's time estimate is: ``python -m ganstudio_style.estimate_check 128x20 256x10``.

For each ``SIZExITERATIONS`` it measures the device's speed afresh (as the Style
transfer tab does), prints the estimate, then runs the optimisation through the
engine exactly as the tab does (fp32, L-BFGS, random VGG-19 weights of the real
shapes: the same arithmetic) and prints the measured time and the ratio.
``--device`` picks the device (default cpu). On a machine shared with other
work the ratio moves with the load: run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganstudio.core.config import resolve_config
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.plugins import PluginManager

from . import estimate
from .gatys import MODEL_ID
from .vgg import random_vgg_state


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganstudio_style.estimate_check")
    p.add_argument("jobs", nargs="+", metavar="SIZExITERATIONS")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="estimate-check-"))
    try:
        torch.save(random_vgg_state("relu5_1"), work / "vgg.pth")
        yy, xx = np.mgrid[0:480, 0:640]
        Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1)
                        .astype(np.uint8)).save(work / "content.png")
        noise = np.random.default_rng(0).random((300, 300, 3)) * 255
        Image.fromarray(noise.astype(np.uint8)).save(work / "style.png")
        spec = PluginManager(load_folder=False).get_model(MODEL_ID)
        for i, job in enumerate(args.jobs):
            size, iterations = (int(v) for v in job.lower().split("x"))
            overrides = dict(content=str(work / "content.png"), style=str(work / "style.png"),
                             vgg_weights=str(work / "vgg.pth"), size=size,
                             iterations=iterations)
            config = resolve_config(spec.schema, overrides)
            layers = config["style_layers"].split(",") + [config["content_layer"]]
            estimate._cache.clear()
            speed = estimate.measure_vgg_speed(args.device, layers)
            guess = estimate.gatys_seconds(config, speed, aspect=0.75)
            engine = Engine(spec, work / f"run{i}", overrides=overrides, settings=EngineSettings(
                total_steps=iterations, device=args.device, precision="fp32", on_nan="stop",
                checkpoint_every_s=0, sample_every_s=10.0, keep_checkpoints=1, n_samples=1))
            engine.prepare()
            t0 = time.perf_counter()
            engine.run_loop()
            real = time.perf_counter() - t0
            print(f"{size} px x {iterations} iterations on {args.device}: estimate {guess:.1f} s, "
                  f"measured {real:.1f} s, measured/estimate {real / guess:.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
