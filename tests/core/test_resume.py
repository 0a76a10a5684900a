"""Exact resume on the CPU: N steps in one go and N/2 + resume give identical losses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganstudio.core import events as ev
from ganstudio.core.checkpoints import load_checkpoint
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import CheckpointError
from ganstudio.plugins import PluginManager

LOSS_KEYS = ("loss_d", "loss_g", "d_real", "d_fake")
DCGAN_TINY = {"resolution": 32, "g_features": 4, "d_features": 4, "latent_dim": 8,
              "batch_size": 4}


def settings(total: int) -> EngineSettings:
    return EngineSettings(total_steps=total, log_every_s=1e9, log_every_steps=1,
                          sample_every_s=1e9, checkpoint_every_s=0, device="cpu",
                          precision="fp32", n_samples=4)


def losses(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"],) + tuple(r[k] for k in LOSS_KEYS if k in r) for r in rows]


def final_weights(run_dir: Path) -> dict:
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    return load_checkpoint(ckpts[-1])["model"]


def assert_same_state(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same_state(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    else:
        assert a == b


def train(spec, run_dir, folder, total, *, resume=False, overrides=None, stop_at=None):
    engine = Engine(spec, run_dir, data_folder=folder, overrides=overrides,
                    settings=settings(total), resume=resume)
    if stop_at is not None:
        engine.listeners.append(lambda e: engine.stop() if isinstance(e, ev.Metrics)
                         and e.step == stop_at else None)
    result = engine.run_loop()
    assert isinstance(result, ev.Finished), result
    return engine, result


@pytest.fixture(scope="module")
def dcgan_spec():
    pm = PluginManager(load_folder=False)
    return pm.get_model("dcgan")


@pytest.mark.parametrize("model", ["tinygan", "dcgan"])
def test_resume_reproduces_an_uninterrupted_run(model, tiny_spec, dcgan_spec, image_folder,
                                                tmp_path):
    spec, overrides = (tiny_spec, None) if model == "tinygan" else (dcgan_spec, DCGAN_TINY)
    n = 8
    train(spec, tmp_path / "whole", image_folder, n, overrides=overrides)
    _, first = train(spec, tmp_path / "split", image_folder, n // 2, overrides=overrides)
    assert first.step == n // 2
    engine, second = train(spec, tmp_path / "split", image_folder, n, resume=True)
    assert engine.resumed_from.name == f"ckpt_{n // 2:08d}.pt"
    assert second.reason == "completed" and second.step == n

    whole, split = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert [r[0] for r in whole] == list(range(1, n + 1))
    assert len(whole[0]) == (5 if model == "dcgan" else 3)
    assert split == whole  # bit-for-bit equal losses at every step
    # the losses really change from step to step (the comparison means something)
    assert len({r[1] for r in whole}) > 1
    assert_same_state(final_weights(tmp_path / "split"), final_weights(tmp_path / "whole"))
    grid = lambda d: (d / "samples" / f"step_{n:08d}.png").read_bytes()  # noqa: E731
    assert grid(tmp_path / "split") == grid(tmp_path / "whole")


def test_resume_after_a_stop_command(tiny_spec, image_folder, tmp_path):
    n = 10
    train(tiny_spec, tmp_path / "whole", image_folder, n)
    _, stopped = train(tiny_spec, tmp_path / "split", image_folder, n, stop_at=3)
    assert stopped.reason == "stopped" and stopped.step == 3
    assert Path(stopped.checkpoint).name == "ckpt_00000003.pt"
    engine, done = train(tiny_spec, tmp_path / "split", image_folder, n, resume=True)
    assert engine.step == n and done.reason == "completed"
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")


def test_resume_drops_metrics_logged_after_the_checkpoint(tiny_spec, image_folder, tmp_path):
    run = tmp_path / "run"
    train(tiny_spec, run, image_folder, 4)
    # lines written after the last checkpoint (a crash before the next one) are replayed
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "time": 1.0, "loss_d": 99.0}) + "\n")
        f.write('{"step": 6, "ti')  # torn last line
    train(tiny_spec, run, image_folder, 6, resume=True)
    steps = [r[0] for r in losses(run)]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert all(r[1] != 99.0 for r in losses(run))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ganstudio", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_resume_via_the_cli(image_folder, tmp_path):
    sets = [x for k, v in DCGAN_TINY.items() for x in ("--set", f"{k}={v}")]
    common = ["--device", "cpu", "--precision", "fp32", "--log-steps", "1", "--quiet",
              "--sample-every", "1e9", "--checkpoint-every", "1e9"]
    # the uninterrupted reference runs in-process (same code path, one start-up less)
    from ganstudio.cli import main
    assert main(["train", "--model", "dcgan", "--data", str(image_folder), "--out",
                 str(tmp_path / "whole"), "--steps", "6", *sets, *common]) == 0
    half = cli("train", "--model", "dcgan", "--data", str(image_folder), "--out", "split",
               "--steps", "3", *sets, *common, cwd=tmp_path)
    assert half.returncode == 0, half.stderr
    assert "completed at step 3" in half.stderr
    # --resume needs neither --model nor --data nor the settings: run.json has them
    rest = cli("train", "--out", "split", "--resume", "--steps", "6", *common, cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert "resuming dcgan" in rest.stderr and "from step 3 to 6" in rest.stderr
    assert "completed at step 6" in rest.stderr
    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    assert [r[0] for r in losses(tmp_path / "whole")] == [1, 2, 3, 4, 5, 6]
    info = json.loads((tmp_path / "split" / "run.json").read_text())
    assert info["total_steps"] == 6 and info["config"]["g_features"] == 4


def test_resume_with_a_changed_architecture_is_refused_and_leaves_the_run(tiny_spec,
                                                                         image_folder, tmp_path):
    run = tmp_path / "run"
    train(tiny_spec, run, image_folder, 2)
    before = (run / "run.json").read_text()
    engine = Engine(tiny_spec, run, data_folder=image_folder, overrides={"resolution": 16},
                    settings=settings(4), resume=True)
    with pytest.raises(CheckpointError, match=r"does not fit model 'tinygan'.*\(resolution\)"):
        engine.prepare()
    assert (run / "run.json").read_text() == before  # the run is not rewritten
    engine, done = train(tiny_spec, run, image_folder, 4, resume=True)
    assert engine.config["resolution"] == 8 and done.step == 4


# -- every random stream: isolated from sampling, kept in checkpoints ----------------------------
def _noisy_spec():
    """A model that draws from torch, Python's random and NumPy in its step, and noise
    while sampling (as outside code wrapped in a plugin may)."""
    import random

    import numpy as np

    from ganstudio.core.config import Field, common_gan_fields
    from ganstudio.core.model import GAN, GANModel, ModelSpec

    class Noisy(GANModel):
        latent_dim = 3

        def __init__(self, config, image_shape, device):
            super().__init__(config, image_shape, device)
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.opt = torch.optim.SGD([self.w], lr=float(self.config["lr"]))

        def train_step(self, real):
            jitter = torch.randn(1) + random.random() + float(np.random.rand())
            loss = ((self.w - jitter) ** 2).sum() + real.mean() * 0
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            return {"loss": loss.detach()}

        @torch.no_grad()
        def sample(self, z):
            noise = torch.randn(z.shape[0], *self.image_shape)          # noise at sampling
            random.random()
            np.random.rand(3)
            return (noise * 0.1 + self.w).clamp(-1, 1)

        def optimizers(self):
            return {"g": self.opt}

        def state_dict(self):
            return {"w": self.w.detach().clone(), "opt": self.opt.state_dict()}

        def load_state_dict(self, state):
            with torch.no_grad():
                self.w.copy_(state["w"])
            self.opt.load_state_dict(state["opt"])

        def generator_module(self):
            return torch.nn.Identity()

    schema = common_gan_fields(resolution=8, resolutions=(8,), batch_size=2) + [
        Field("lr", "float", 0.05, "learning rate", min=1e-6, max=1.0)]
    return ModelSpec("noisy", "Noisy", GAN, schema, Noisy, learning_rates=("lr",))


NOISY_IMAGES = torch.randint(0, 255, (6, 3, 8, 8), dtype=torch.uint8,
                             generator=torch.Generator().manual_seed(0))


def _noisy_run(run_dir, total, *, sample_every=1000, resume=False, stop_at=None):
    s = EngineSettings(total_steps=total, log_every_s=1e9, log_every_steps=1,
                       sample_every_s=1e9, sample_every_steps=sample_every,
                       checkpoint_every_s=0, device="cpu", precision="fp32", n_samples=4,
                       monitors=False)
    engine = Engine(_noisy_spec(), run_dir, images=NOISY_IMAGES, settings=s, resume=resume)
    if stop_at is not None:
        engine.listeners.append(lambda e: engine.stop() if isinstance(e, ev.Metrics)
                                and e.step == stop_at else None)
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    return [(r["step"], r["loss"]) for r in
            (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())]


def test_sampling_that_draws_noise_does_not_shift_training(tmp_path):
    quiet = _noisy_run(tmp_path / "quiet", 8, sample_every=1000)
    busy = _noisy_run(tmp_path / "busy", 8, sample_every=1)        # a grid after every step
    assert len(quiet) == 8 and quiet == busy


def test_python_and_numpy_random_states_survive_a_resume(tmp_path):
    whole = _noisy_run(tmp_path / "whole", 8)
    _noisy_run(tmp_path / "parts", 8, stop_at=4)
    ckpt = sorted((tmp_path / "parts" / "checkpoints").glob("ckpt_*.pt"))[-1]
    rng = load_checkpoint(ckpt)["rng"]
    assert {"torch", "python", "numpy"} <= set(rng)
    import random

    import numpy as np
    random.seed(12345)            # the resumed process starts with other global states
    np.random.seed(54321)
    resumed = _noisy_run(tmp_path / "parts", 8, resume=True)
    assert resumed == whole and resumed[3][0] == 4
