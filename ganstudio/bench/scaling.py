"""Distributed scaling: images per second with 1, 2, ... processes, side by side.

::

    python -m ganstudio.bench.scaling --model ID --data DIR [--nproc 1 2] [--steps 60]
        [--rounds 2] [--device cpu] [--set KEY=VALUE ...]

Each process count trains the same model from scratch with ``ganstudio train
--nproc-per-node N`` (torchrun's launcher; gloo on a CPU, NCCL on GPUs) for
``--steps`` steps, and its throughput is read from the run's metrics.jsonl
(global images per second as rank 0 logs them, the first third of the lines
left out as warm-up). The counts alternate over ``--rounds`` rounds so that
the machine's other load falls on all of them alike; the median is reported.

It also prints what a step must communicate: DDP all-reduces every trained
gradient once per step, so each rank sends and receives about
``2 (N-1)/N x gradient bytes`` per step (ring all-reduce). Divided by a link's
bandwidth and compared with the step time, that says how far the scaling can go.

On a CPU the processes share its cores: the batch size setting is per process,
so N processes train N times the images per step with 1/N of the cores each.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

def gradient_bytes(model_id: str, settings: list[str]) -> int:
    """Bytes of the gradients DDP averages per step (fp32: 4 bytes per trained weight)."""
    import torch
    from ganstudio.core.config import parse_set_args, resolve_config
    from ganstudio.plugins import get_plugin_manager
    spec = get_plugin_manager().get_model(model_id)
    config = resolve_config(spec.schema, parse_set_args(settings))
    shape = (int(config["channels"]), int(config["resolution"]), int(config["resolution"]))
    model = spec.factory(config, shape, torch.device("cpu"))
    return sum(4 * p.numel() for net in model.trained_networks().values()
               for p in net.parameters() if p.requires_grad)


def run_once(nproc: int, data: str, model_id: str, settings: list[str], steps: int,
             device: str, workdir: Path) -> dict:
    out = workdir / f"run_{nproc}_{len(list(workdir.iterdir()))}"
    cmd = [sys.executable, "-m", "ganstudio", "train", "--model", model_id, "--data", data,
           "--out", str(out), "--steps", str(steps), "--device", device, "--precision",
           "fp32", "--quiet", "--no-monitors", "--sample-every", "1e9",
           "--checkpoint-every", "1e9", "--log-steps", "5", "--no-estimate", "--nproc-per-node", str(nproc)]
    for item in settings:
        cmd += ["--set", item]
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)    # the launcher shares the cores out per process
    if nproc == 1:
        env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{nproc} process(es) failed:\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r.get("img_per_s")]
    kept = rows[len(rows) // 3:] or rows
    # images per second over the kept interval: steps x global batch / elapsed time
    info = json.loads((out / "run.json").read_text())
    batch = int(info.get("global_batch") or info["config"]["batch_size"])
    span_steps = kept[-1]["step"] - kept[0]["step"]
    span_s = kept[-1]["time"] - kept[0]["time"]
    ips = span_steps * batch / span_s if span_s > 0 else float("nan")
    return {"nproc": nproc, "img_per_s": ips, "global_batch": batch,
            "step_s": span_s / max(span_steps, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ganstudio.bench.scaling",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder of training images")
    p.add_argument("--model", required=True, help="a model that declares capability ddp")
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="model settings (default: the model's quick settings)")
    args = p.parse_args(argv)
    settings = args.set
    if settings is None:
        from ganstudio.plugins import get_plugin_manager
        quick = getattr(get_plugin_manager().get_model(args.model), "quick_settings", {}) or {}
        settings = [f"{k}={v}" for k, v in quick.items()]
    results: dict[int, list[dict]] = {n: [] for n in args.nproc}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for n in args.nproc:
                results[n].append(run_once(n, args.data, args.model, settings, args.steps,
                                           args.device, Path(tmp)))
    grad = gradient_bytes(args.model, settings)
    base = statistics.median(r["img_per_s"] for r in results[args.nproc[0]])
    print(f"{args.model} {' '.join(settings)}; device {args.device}; {os.cpu_count()} cores; "
          f"{args.steps} steps, median of {args.rounds}")
    print(f"gradients all-reduced per step: {grad / 1e6:.2f} MB")
    for n in args.nproc:
        ips = statistics.median(r["img_per_s"] for r in results[n])
        step = statistics.median(r["step_s"] for r in results[n])
        sent = grad * 2 * (n - 1) / n
        print(f"{n} process(es): {ips:8.1f} img/s  (x{ips / base:.2f})  step {step * 1e3:.1f} ms, "
              f"global batch {results[n][0]['global_batch']}, each rank sends "
              f"{sent / 1e6:.2f} MB per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
