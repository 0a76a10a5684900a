"""Training on a CPU another program keeps busy: fixed threads against shared cores.

``python -m ganstudio.bench.busy_cpu`` trains the benchmark's model (the classic
recipe, 32 px, batch 16, width 32 by default) four times in one run, side by
side: on a quiet machine and beside a process that keeps one core busy, each
with the engine's thread count fixed at the machine's cores and with it shared
(:mod:`ganstudio.core.cpu_share`: as many threads as other programs leave cores
free). It prints the seconds of each and the ratios; compare ratios, not
absolute times, across machines.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _train(steps: int, share: bool, work: Path, settings: dict[str, Any]) -> tuple[float, int]:
    """Seconds for ``steps`` steps, and how often the engine changed its thread count."""
    import torch

    from ganstudio.core.engine import Engine, EngineSettings
    from ganstudio.core.cpu_share import usable_cores
    from ganstudio.plugins import get_plugin_manager
    from ganstudio.testing import tiny_images

    from .reference import reference_model

    pm = get_plugin_manager()
    ref = reference_model(pm)
    spec = pm.get_model(ref.model_id)
    torch.set_num_threads(usable_cores())
    engine = Engine(spec, work, overrides=settings, images=tiny_images(256, 3, 32, seed=1),
                    settings=EngineSettings(total_steps=steps, device="cpu", precision="fp32",
                                            monitors=False, sample_every_s=1e9,
                                            checkpoint_every_s=0, share_cpu=share))
    engine.prepare()
    t0 = time.perf_counter()
    engine.run_loop()
    seconds = time.perf_counter() - t0
    changes = (work / "events.log").read_text(encoding="utf-8").count("CPU thread(s)")
    return seconds, changes


def measure(steps: int = 300, resolution: int = 32, batch_size: int = 16,
            features: int = 32, repeats: int = 2) -> dict[str, Any]:
    """Seconds for ``steps`` steps, quiet and beside a busy process, fixed and shared:
    the best of ``repeats`` rounds, the order alternating from round to round."""
    from ganstudio.core.cpu_share import usable_cores
    from ganstudio.plugins import get_plugin_manager

    from .reference import reference_model

    ref = reference_model(get_plugin_manager())
    settings = dict(ref.settings(resolution=resolution, batch_size=batch_size,
                                 features=features))
    out: dict[str, Any] = {"cores": usable_cores(), "steps": steps, "settings": settings}
    with tempfile.TemporaryDirectory(prefix="ganstudio-busy-") as tmp:
        for busy in (False, True):
            spinner = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
                       if busy else None)
            try:
                for rnd in range(max(1, repeats)):
                    for share in ((False, True) if rnd % 2 == 0 else (True, False)):
                        key = f"{'busy' if busy else 'quiet'}_{'shared' if share else 'fixed'}"
                        seconds, changes = _train(steps, share, Path(tmp) / f"{key}{rnd}",
                                                  settings)
                        out[f"{key}_s"] = round(min(seconds, out.get(f"{key}_s", 1e9)), 2)
                        out[f"{key}_thread_changes"] = changes
            finally:
                if spinner is not None:
                    spinner.kill()
                    spinner.wait()
    out["busy_fixed_over_shared"] = round(out["busy_fixed_s"] / out["busy_shared_s"], 2)
    out["quiet_fixed_over_shared"] = round(out["quiet_fixed_s"] / out["quiet_shared_s"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganstudio.bench.busy_cpu",
                                description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2, help="rounds; the best of each is kept")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    r = measure(args.steps, args.resolution, args.batch, args.features, args.repeats)
    print(f"{r['steps']} steps on {r['cores']} cores, settings {r['settings']}")
    print(f"quiet machine: fixed threads {r['quiet_fixed_s']} s, shared {r['quiet_shared_s']} s "
          f"(fixed/shared {r['quiet_fixed_over_shared']}x)")
    print(f"one core busy: fixed threads {r['busy_fixed_s']} s, shared {r['busy_shared_s']} s "
          f"(fixed/shared {r['busy_fixed_over_shared']}x; the engine changed its threads "
          f"{r['busy_shared_thread_changes']} time(s) in the last shared run)")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
