"""Style transfer under the stopwatch: iterations per second and time to a result.

The model is the first the plugin manager offers with kind ``image2image``
(the built-in style plugin's Gatys et al. 2016 optimisation, when installed), run by
the engine with the settings ``ganstudio stylize`` uses. The pictures are
generated. Where no VGG-19 weights file is installed, a file of random
weights with VGG-19's shapes is written and used: the arithmetic, and so the
time, is the same; the picture is not meaningful.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganstudio.core import events as ev
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.model import IMAGE_TO_IMAGE

from .engine_runs import ThroughputProbe

#: torchvision's VGG-19 ("E") trunk: output channels per conv, "M" = max-pool.
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
_HUB_FILE = "vgg19-dcbb9e9d.pth"


def random_vgg19_file(path: Path, seed: int = 0) -> Path:
    """A features-only VGG-19 state_dict (torchvision key names) with He-initialised weights."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    c_in, index = 3, 0
    for v in _VGG19:
        if v == "M":
            index += 1
            continue
        w = torch.randn(v, c_in, 3, 3, generator=g) * (2.0 / (c_in * 9)) ** 0.5
        state[f"features.{index}.weight"] = w
        state[f"features.{index}.bias"] = torch.zeros(v)
        c_in, index = v, index + 2
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _picture(path: Path, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(low, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.int16) + rng.integers(-20, 21, (size, size, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").save(path)
    return path


def measure_style(pm: Any, work: Path, *, size: int, iterations: int,
                  device: str = "auto") -> dict[str, Any]:
    specs = pm.models(kind=IMAGE_TO_IMAGE)
    if not specs:
        return {"skipped": "no image-to-image (style transfer) model is installed"}
    spec = specs[0]
    field_names = {f.name for f in spec.schema}
    needed = {"content", "style"}
    if not needed <= field_names:
        return {"skipped": f"model '{spec.id}' has no content/style settings"}

    folder = work / "style"
    folder.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {
        "content": str(_picture(folder / "content.png", size, 1)),
        "style": str(_picture(folder / "style.png", size, 2)),
    }
    if "size" in field_names:
        overrides["size"] = int(size)
    if "iterations" in field_names:
        overrides["iterations"] = int(iterations)
    weights_note = ""
    if "vgg_weights" in field_names:
        hub = Path(torch.hub.get_dir()) / "checkpoints" / _HUB_FILE
        if not hub.exists():
            overrides["vgg_weights"] = str(random_vgg19_file(folder / "vgg19-random.pth"))
            weights_note = "random VGG-19 weights (no weights file installed; same cost)"

    run_dir = folder / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    probe = ThroughputProbe()
    warm = min(10, max(1, iterations // 10))     # the first iterations build L-BFGS's history
    # ``ganstudio stylize``'s settings, plus a metrics point every ``warm`` iterations (one
    # at the end of the warm-up even when the whole job is shorter than 100 ms).
    settings = EngineSettings(total_steps=int(iterations), device=device, precision="fp32",
                              on_nan="stop", checkpoint_every_s=0, sample_every_s=10.0,
                              keep_checkpoints=1, n_samples=1, log_every_steps=warm)
    engine = Engine(spec, run_dir, overrides=overrides, settings=settings, listeners=[probe],
                    plugin_version=pm.plugin_version(spec))
    t0 = time.perf_counter()
    engine.prepare()
    t_ready = time.perf_counter()
    final = engine.run_loop()
    if isinstance(final, ev.Failed):
        return {"error": final.message, "model": spec.id}
    image = engine.model.result().float().cpu()      # waits for the device
    total_s = time.perf_counter() - t0
    steps_done, seconds = probe.measure(warm, 1)
    evaluations = engine.model.status().get("evaluations")   # the declared ImageJob surface
    out = {
        "model": spec.id, "size": int(size), "iterations": int(engine.step),
        "iterations_per_s": steps_done / seconds if seconds > 0 else 0.0,
        "time_to_result_s": total_s, "prepare_s": t_ready - t0,
        "result_shape": list(image.shape), "device": engine.device.name,
    }
    if evaluations is not None:
        evaluations = int(evaluations)
        out["loss_evaluations"] = evaluations
        out["evaluations_per_s"] = evaluations / max(total_s - (t_ready - t0), 1e-9)
    if weights_note:
        out["note"] = weights_note
    return out
