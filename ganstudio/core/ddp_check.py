"""The ``ddp`` conformance check: does a model train identically on two processes?

:func:`check_ddp` starts two CPU processes joined by gloo (rank 0 and rank 1,
torchrun's environment set by hand), each builds the model at its spec's
``test_settings`` on random images, wraps its trained networks in
DistributedDataParallel as the engine does, trains a few steps on its own
batches, and compares the parameters across the ranks. They must be identical:
anything else means a network is called outside its wrapper, or the model
decides something per process.

Run as a module (``python -m ganstudio.core.ddp_check --worker ...``) it is the
worker itself.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DdpCheck:
    ok: bool
    max_difference: float | None   # largest parameter difference between the ranks
    detail: str                    # what failed (empty when ok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_ddp(model_id: str, *, plugins_dir: str | None = None, steps: int = 3,
              timeout_s: float = 300.0) -> DdpCheck:
    """Train ``model_id`` for ``steps`` steps on two gloo processes; compare weights."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        procs = []
        for rank in range(2):
            env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2",
                   "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                   "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, "-m", "ganstudio.core.ddp_check", "--worker", model_id,
                   str(out), str(steps)] + ([plugins_dir] if plugins_dir else [])
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        errors = []
        for rank, p in enumerate(procs):
            try:
                _out, err = p.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                return DdpCheck(False, None, f"two processes did not finish {steps} steps "
                                             f"within {timeout_s:.0f} s")
            if p.returncode != 0:
                last = [line for line in err.strip().splitlines() if line.strip()]
                errors.append(f"rank {rank}: {last[-1] if last else f'exit {p.returncode}'}")
        if errors:
            return DdpCheck(False, None, "; ".join(errors))
        result = json.loads(out.read_text())
    diff = float(result["max_difference"])
    if diff != 0.0:
        return DdpCheck(False, diff, f"after {steps} steps the two processes' weights differ "
                                     f"by up to {diff:.3g}: call the trained networks through "
                                     "self.network(name) in train_step, and decide nothing "
                                     "from values only one process sees")
    return DdpCheck(True, 0.0, "")


def _worker(model_id: str, out: str, steps: int, plugins_dir: str | None) -> None:
    import torch
    from ganstudio.core import distributed as dist
    from ganstudio.core.config import resolve_config
    from ganstudio.core.data import DeviceImages
    from ganstudio.plugins import get_plugin_manager

    info = dist.rank_info()
    spec = get_plugin_manager(plugins_dir).get_model(model_id)
    config = resolve_config(spec.schema, dict(spec.test_settings))
    torch.manual_seed(dist.rank_seed(int(config.get("seed", 0)), info.rank))
    res, ch = int(config["resolution"]), int(config["channels"])
    images = torch.randint(0, 256, (16, ch, res, res), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(7))
    data = DeviceImages(images, torch.device("cpu"), seed=dist.rank_seed(1, info.rank))
    model = spec.factory(config, data.shape, torch.device("cpu"))
    model.attach_data(data)
    ranks = dist.Ranks.start(info, torch.device("cpu"), timeout_s=120)
    try:
        dist.check_capability(spec, info)
        ranks.wrap(model, spec.id)
        for _ in range(steps):
            own = bool(getattr(model, "draws_own_batches", False))
            model.train_step(None if own else data.batch(model.batch_size))
        params = [p for net in model.trained_networks().values() for p in net.parameters()]
        diff = ranks.max_difference(params)
        if info.is_writer:
            Path(out).write_text(json.dumps({"max_difference": diff}))
        ranks.barrier()
    finally:
        ranks.close()


if __name__ == "__main__":  # pragma: no cover - run in the check's subprocesses
    if len(sys.argv) >= 5 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                sys.argv[5] if len(sys.argv) > 5 else None)
    else:
        raise SystemExit("usage: python -m ganstudio.core.ddp_check --worker MODEL OUT STEPS "
                         "[PLUGINS_DIR]")
