"""Timing check of style transfer on a GPU: ``python -m ganstudio_style.gpu_check``.

Runs, through the engine exactly as ``ganstudio stylize`` does:

1. 512 px, 300 iterations, L-BFGS (and Adam) -- seconds and iterations per second;
2. 1024 px, coarse-to-fine (512 -> 1024), 300 iterations;
3. a fast-style network applied to a 1024 px picture (milliseconds per image).

Pictures: ``--content`` / ``--style`` (default: generated patterns).
Weights: ``--vgg-weights`` or torchvision's cached file; when neither exists a
random VGG-19 is used (timings are the same; the pictures are not artistic).
Writes the images and a JSON summary to ``--out``. ``peak_gpu_gib`` is each
job's own peak (the counters are reset before each job); ``prepare_s`` is the
first job's CUDA/cuDNN start-up plus loading VGG and computing the targets.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.plugins import PluginManager

from .fast import TransformerNet, stylize_tensor
from .imaging import load_image, save_image
from .vgg import find_weights, random_vgg_state


def _default_pictures(out: Path) -> tuple[Path, Path]:
    yy, xx = np.mgrid[0:768, 0:1024]
    content = np.stack([xx / 4, yy / 3, (xx + yy) / 7], -1).astype(np.uint8)
    style = ((np.sin(xx / 9.0) * np.cos(yy / 13.0) + 1) * 120).astype(np.uint8)
    Image.fromarray(content).save(out / "content.png")
    Image.fromarray(np.stack([style, 255 - style, style // 2], -1)).save(out / "style.png")
    return out / "content.png", out / "style.png"


def _sync(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def run_job(spec, out: Path, name: str, device: str, **overrides) -> dict:
    run = Path(tempfile.mkdtemp(prefix=f"gpucheck-{name}-"))
    steps = int(overrides["iterations"])
    engine = Engine(spec, run, overrides=overrides,
                    settings=EngineSettings(total_steps=steps, device=device, precision="fp32",
                                            checkpoint_every_s=0, sample_every_s=1e9,
                                            on_nan="stop", n_samples=1))
    if device.startswith("cuda") and torch.cuda.is_available():
        # Each job's own peak (not the largest of all jobs so far in this process).
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    engine.prepare()
    _sync(device)
    t1 = time.perf_counter()
    done = engine.run_loop()
    _sync(device)
    t2 = time.perf_counter()
    image = engine.model.result_image()
    save_image(image, out / f"{name}.png")
    rows, _ = engine.run.read_metrics()
    peak = (torch.cuda.max_memory_allocated() / 2**30
            if device.startswith("cuda") and torch.cuda.is_available() else None)
    result = {"name": name, "reason": getattr(done, "reason", str(done)),
              "size": list(image.shape[-2:]), "iterations": engine.step,
              "evaluations": engine.model.evaluations, "prepare_s": round(t1 - t0, 2),
              "optimise_s": round(t2 - t1, 2), "it_per_s": round(engine.step / (t2 - t1), 2),
              "first_loss": rows[0]["loss"] if rows else None,
              "last_loss": rows[-1]["loss"] if rows else None,
              "peak_gpu_gib": round(peak, 2) if peak is not None else None}
    print(json.dumps(result), flush=True)
    shutil.rmtree(run, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--content")
    p.add_argument("--style")
    p.add_argument("--vgg-weights")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="style_gpu_check")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--skip-1024", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    content, style = (Path(args.content), Path(args.style)) if args.content and args.style \
        else _default_pictures(out)
    weights, real_weights = args.vgg_weights, True
    if not weights:
        try:
            weights = str(find_weights(None))
        except UserError:
            weights, real_weights = str(out / "vgg19_random.pth"), False
            torch.save(random_vgg_state("relu5_1", seed=0), weights)
    spec = PluginManager(load_folder=False).get_model("style-transfer")
    common = dict(content=str(content), style=str(style), vgg_weights=weights,
                  iterations=args.iterations)
    device = args.device
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    results = {"device": torch.cuda.get_device_name() if device.startswith("cuda") and
               torch.cuda.is_available() else device, "real_vgg_weights": real_weights,
               "content": str(content), "style": str(style), "runs": []}
    results["runs"].append(run_job(spec, out, "512_lbfgs", device, size=512, **common))
    results["runs"].append(run_job(spec, out, "512_adam", device, size=512, optimizer="adam",
                                   **common))
    if not args.skip_1024:
        results["runs"].append(run_job(spec, out, "1024_lbfgs", device, size=1024, **common))
        # Fast network: one pass at 1024 px (untrained weights: the timing is what counts).
        net = TransformerNet().to(device).eval()
        image = load_image(content, 1024)
        stylize_tensor(net, image)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(10):
            stylize_tensor(net, image)
        _sync(device)
        results["fast_apply_1024_ms"] = round((time.perf_counter() - t0) * 100, 2)
        print(json.dumps({"fast_apply_1024_ms": results["fast_apply_1024_ms"]}), flush=True)
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'summary.json'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
