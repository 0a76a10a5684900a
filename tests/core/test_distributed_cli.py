"""``ganstudio train --nproc-per-node 2`` on this CPU (gloo): one writer, identical
parameters on both ranks, a rank killed with SIGKILL ends the run, which resumes with
two processes and then with one."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganstudio.cli import main
from ganstudio.cli.launch import worker_argv
from ganstudio.cli.train import TrainRequest
from ganstudio.core.runs import RunFolder

# DCGAN at its smallest: 32 px, 4 feature maps, 4 images per process
TINY = ["--model", "dcgan", "--set", "resolution=32", "--set", "g_features=4",
        "--set", "d_features=4", "--set", "batch_size=4"]
FAST = ["--device", "cpu", "--precision", "fp32", "--quiet", "--no-monitors", "--no-estimate",
        "--sample-every", "1e9", "--checkpoint-every", "1e9"]


def ganstudio(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ganstudio", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def metrics_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_worker_command_line_round_trips():
    from ganstudio.cli import build_parser
    req = TrainRequest(out="r", model="dcgan", data="d d", steps=9, set=["a=1", "b=x y"],
                       resume=True, checkpoint_steps=3, quiet=True, plugins_dir="p")
    argv = worker_argv(req)
    assert "--nproc-per-node" not in argv and argv[0] == "train"
    again = TrainRequest.from_args(build_parser().parse_args(argv))
    assert again == req


def test_a_model_without_ddp_is_refused_before_anything_starts(tmp_path, image_folder,
                                                               tiny_plugin_file, capsys):
    code = main(["train", "--model", "tinygan", "--data", str(image_folder), "--out",
                 str(tmp_path / "run"), "--nproc-per-node", "2", *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot train on several processes" in err and "capability 'ddp'" in err
    assert not (tmp_path / "run").exists()


def test_two_processes_one_writer_then_resume_with_one(tmp_path, image_folder, capsys):
    run = tmp_path / "run"
    code, output = finish(ganstudio(
        "train", *TINY, "--data", str(image_folder), "--out", str(run), "--steps", "6",
        "--checkpoint-steps", "3", "--log-steps", "1", "--nproc-per-node", "2", *FAST))
    assert code == 0, output
    info = json.loads((run / "run.json").read_text())
    assert (info["world_size"], info["global_batch"]) == (2, 8)
    log = (run / "events.log").read_text()
    assert "rank 0 of 2 joined" in log and "rank 1: rank 1 of 2 joined" in log
    # the engine compares every rank's parameters before each checkpoint
    assert log.count("parameters identical on all 2 ranks") == 2, log
    assert "step 3: parameters identical" in log and "step 6: parameters identical" in log
    # one writer: every step logged once, each checkpoint written once, rank 1 logged
    # nothing but its arrival
    assert metrics_steps(run) == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "ckpt_00000003.pt", "ckpt_00000006.pt"]
    assert [line for line in log.splitlines() if "rank 1:" in line] == [
        line for line in log.splitlines() if "rank 1: rank 1 of 2 joined" in line]
    assert output.count("completed at step 6") == 1      # rank 1 prints no progress

    # resume the two-process run with one process: the checkpoint carries no per-rank state
    code = main(["train", "--resume", "--out", str(run), "--steps", "8", "--log-steps", "1",
                 *FAST])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "completed at step 8" in err
    info = json.loads((run / "run.json").read_text())
    assert (info["world_size"], info["global_batch"]) == (1, 4)
    assert metrics_steps(run) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert "resumed from ckpt_00000006.pt at step 6" in (run / "events.log").read_text()


def _wait_for(cond, timeout: float, proc: subprocess.Popen, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def test_kill_9_of_one_rank_ends_the_run_and_it_resumes(tmp_path, image_folder):
    run = tmp_path / "run"
    proc = ganstudio("train", *TINY, "--data", str(image_folder), "--out", str(run),
                     "--steps", "100000", "--checkpoint-steps", "5", "--nproc-per-node", "2",
                     *FAST, start_new_session=True)
    try:
        events = run / "events.log"
        pid_re = re.compile(r"rank 1 of 2 joined \(pid (\d+)")
        _wait_for(lambda: events.exists() and pid_re.search(events.read_text()), 180, proc,
                  "rank 1 joined")
        _wait_for(lambda: RunFolder(run).has_checkpoint(), 180, proc, "a checkpoint")
        pid = int(pid_re.search(events.read_text()).group(1))
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        code, output = finish(proc, timeout=90)
        took = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 1, output
    assert took < 60, took
    log = events.read_text()
    assert f"launcher: rank 1 (pid {pid}) was killed by SIGKILL" in log, log
    assert "every rank was stopped after rank 1 ended" in log       # the cause, not rank 0
    assert "the run can be resumed" in log
    assert f"rank 1 (pid {pid}) was killed by SIGKILL" in output
    assert "to continue: ganstudio train --resume --nproc-per-node 2" in output

    # resume with two processes: it continues from the newest checkpoint
    newest = RunFolder(run).last_step()
    last_ckpt = max(int(p.name[5:13]) for p in (run / "checkpoints").glob("ckpt_*.pt"))
    assert newest >= last_ckpt >= 5
    code, output = finish(ganstudio("train", "--resume", "--out", str(run), "--steps",
                                    str(last_ckpt + 3), "--nproc-per-node", "2", *FAST))
    assert code == 0, output
    log = events.read_text()
    assert f"resumed from ckpt_{last_ckpt:08d}.pt at step {last_ckpt}" in log
    assert f"completed at step {last_ckpt + 3}" in log
    assert metrics_steps(run)[-1] == last_ckpt + 3


#: A tiny model that declares capability ddp and runs out of memory on rank 1 at step 3.
OOM_PLUGIN = '''
import os
import torch
import torch.nn as nn
import ganstudio
from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.model import GAN, GANModel, ModelSpec

__version__ = "0.0.1"
GANSTUDIO_PLUGIN_API = 1


class OomGAN(GANModel):
    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        c, h, w = self.image_shape
        self.latent_dim = 4
        self.G = nn.Linear(4, c * h * w)
        self.D = nn.Linear(c * h * w, 1)
        self.opt_g = torch.optim.SGD(self.G.parameters(), lr=0.01)
        self.opt_d = torch.optim.SGD(self.D.parameters(), lr=0.01)
        self.steps = 0

    def trained_networks(self):
        return {"g": self.G, "d": self.D}

    def train_step(self, real):
        self.steps += 1
        if os.environ.get("RANK") == "1" and self.steps == 3:
            raise torch.OutOfMemoryError("out of memory (a test)")
        G, D = self.network("g"), self.network("d")
        z = torch.randn(real.shape[0], 4)
        self.opt_d.zero_grad()
        loss_d = D(real.flatten(1)).mean() - D(G(z).detach()).mean()
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        loss_g = -D(G(z)).mean()
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    @torch.no_grad()
    def sample(self, z):
        return torch.tanh(self.G(z)).view(z.shape[0], *self.image_shape)

    def state_dict(self):
        return {"G": self.G.state_dict(), "D": self.D.state_dict()}

    def load_state_dict(self, state):
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])

    def generator_module(self):
        return self.G


@ganstudio.hookimpl
def ganstudio_register_models():
    return [ModelSpec(id="oomgan", name="OOM test", kind=GAN,
                      schema=common_gan_fields(resolution=8, resolutions=(8,), batch_size=4),
                      factory=OomGAN, capabilities=frozenset({"ddp"}))]
'''


def test_out_of_memory_on_one_rank_gives_the_one_gpu_advice(tmp_path, image_folder,
                                                            plugins_dir):
    (plugins_dir / "oom_plugin.py").write_text(OOM_PLUGIN)
    run = tmp_path / "run"
    code, output = finish(ganstudio("train", "--model", "oomgan", "--data", str(image_folder),
                                    "--out", str(run), "--steps", "20", "--nproc-per-node",
                                    "2", *FAST))
    assert code == 1, output
    log = (run / "events.log").read_text()
    assert "ERROR   rank 1: the device ran out of memory at step 2 (batch size 4)" in log, log
    assert "launcher: rank 1 (pid" in log and "exited with code 1" in log
    assert "try a smaller batch (batch_size=2) and resume" in output
