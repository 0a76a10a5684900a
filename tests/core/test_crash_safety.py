"""Crash safety with the real process: ``ganstudio train`` is killed with SIGKILL at
random moments (and once in the middle of a checkpoint write), then resumed; damaged
checkpoints are detected by checksum; a full disk stops the run cleanly.

The kill moments are random; set ``GANSTUDIO_CRASH_SEED`` to replay a failing
sequence (the seed is in every assertion message).
"""
from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ganstudio.core import checkpoints as ckpt_mod
from ganstudio.core import events as ev
from ganstudio.core.checkpoints import NAME_RE, list_checkpoints, verify_checkpoint
from ganstudio.core.safe_files import TEMP_RE
from ganstudio.core.runs import RunFolder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and rlimits are POSIX")

SEED = int(os.environ.get("GANSTUDIO_CRASH_SEED", random.SystemRandom().randrange(10**6)))

#: Runs ``ganstudio`` with the checkpoint writer slowed at its Nth write: it writes the
#: header and half the payload, flushes, drops a marker file and sleeps, so the test can
#: kill the process with a half-written checkpoint on disk. Only the test does this.
SLOW_WRITER = r"""
import os, sys, time
import ganstudio.core.checkpoints as c
real, calls = c._write_all, [0]
def slow(f, header, payload):
    calls[0] += 1
    if calls[0] < int(os.environ["SLOW_AT"]):
        return real(f, header, payload)
    f.write(header)
    f.write(payload[: len(payload) // 2])
    f.flush()
    os.fsync(f.fileno())
    open(os.environ["SLOW_MARKER"], "w").close()
    time.sleep(300)
    f.write(payload[len(payload) // 2:])
c._write_all = slow
from ganstudio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


class Trainer:
    """Starts ``ganstudio train --resume`` on one run folder, as a real child process."""

    def __init__(self, data: Path, run_dir: Path, logs: Path):
        self.data, self.run_dir, self.logs = data, run_dir, logs
        self.count = 0

    def args(self, steps: int) -> list[str]:
        return ["train", "--model", "tinygan", "--data", str(self.data), "--out",
                str(self.run_dir), "--resume", "--steps", str(steps), "--device", "cpu",
                "--quiet", "--set", "latent_dim=256", "--checkpoint-steps", "3",
                "--sample-steps", "7", "--log-steps", "1", "--keep-checkpoints", "3",
                "--checkpoint-every", "inf"]

    def start(self, steps: int = 10**7, *, wrapper: str | None = None,
              preexec=None, **env: str) -> tuple[subprocess.Popen, Path]:
        self.count += 1
        err = self.logs / f"stderr_{self.count}.txt"
        head = [sys.executable, "-c", wrapper] if wrapper else [sys.executable, "-m", "ganstudio"]
        with open(err, "wb") as f:
            proc = subprocess.Popen(head + self.args(steps), stdout=subprocess.DEVNULL,
                                    stderr=f, env=_env(**env), preexec_fn=preexec)
        return proc, err


def kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def wait_for(predicate, timeout: float, proc: subprocess.Popen, what: str, err: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the trainer exited ({proc.returncode}) before {what}; "
                                 f"seed {SEED}:\n{err.read_text(errors='replace')}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; seed {SEED}")


def ckpt_steps(run_dir: Path) -> list[int]:
    return [int(NAME_RE.match(p.name).group(1)) for p in list_checkpoints(run_dir / "checkpoints")]


def assert_resumable(run_dir: Path, context: str) -> int:
    """After a kill: every checkpoint under its final name verifies, run.json (if any) is
    valid, metrics parse. Returns the step a resume must start from."""
    for p in list_checkpoints(run_dir / "checkpoints"):
        assert verify_checkpoint(p) is None, f"{context}: {p.name} is damaged; seed {SEED}"
    run = RunFolder(run_dir)
    if run.info_path.exists():
        assert run.read_info()["model_id"] == "tinygan"
    run.read_metrics(0)
    steps = ckpt_steps(run_dir)
    return steps[-1] if steps else 0


def started_from(err: Path) -> int | None:
    m = re.search(r"(?:resuming|training) tinygan on \S+ .*? from step (\d+) to",
                  err.read_text(errors="replace"))
    return int(m.group(1)) if m else None


def test_sigkill_at_random_moments_then_resume(tmp_path, image_folder, tiny_plugin_file):
    """One run through its life: killed at random moments, killed mid-write, a damaged
    checkpoint, completion, then a disk that cannot take the next checkpoint. (One test,
    because every start of a real process costs seconds of importing torch.)"""
    rng = random.Random(SEED)
    run_dir = tmp_path / "run"
    logs = tmp_path / "logs"
    logs.mkdir()
    t = Trainer(image_folder, run_dir, logs)
    expected_start = 0

    # (1) a kill at a random moment of start-up or early training: import, data
    # preparation, run.json, the first steps and checkpoints.
    proc, err = t.start()
    time.sleep(rng.uniform(0.3, 3.0))
    kill(proc)
    expected_start = assert_resumable(run_dir, "kill during start-up")

    # (2) and (3) kills at random moments while training (a checkpoint every 3 steps,
    # a sample every 7, a metrics line every step: writes are always in flight).
    for cycle in (2, 3):
        proc, err = t.start()
        wait_for(lambda: bool(ckpt_steps(run_dir)) and ckpt_steps(run_dir)[-1] > expected_start,
                 90, proc, "a new checkpoint", err)
        time.sleep(rng.uniform(0.0, 0.5))
        kill(proc)
        started = started_from(err)
        assert started == expected_start, (
            f"cycle {cycle} resumed from {started}, expected {expected_start}; seed {SEED}")
        expected_start = assert_resumable(run_dir, f"kill {cycle}")
        assert expected_start > 0

    # (4) a kill in the middle of writing a checkpoint: half the file is on disk.
    marker = tmp_path / "writing"
    proc, err = t.start(wrapper=SLOW_WRITER, SLOW_AT="2", SLOW_MARKER=str(marker))
    wait_for(marker.exists, 90, proc, "the slowed checkpoint write", err)
    kill(proc)
    assert started_from(err) == expected_start, f"seed {SEED}"
    temps = [p for p in (run_dir / "checkpoints").iterdir() if TEMP_RE.match(p.name)]
    assert len(temps) == 1, f"expected the half-written temp file; seed {SEED}"
    newest_before = assert_resumable(run_dir, "kill mid-write")
    half = temps[0].stat().st_size
    full = (run_dir / "checkpoints" / f"ckpt_{newest_before:08d}.pt").stat().st_size
    assert 0 < half < full, "the temp file should hold a partial checkpoint"

    # (5) damage the newest checkpoint (as a disk might): the checksum catches it, the
    # previous one is used, and the run completes.
    steps = ckpt_steps(run_dir)
    assert len(steps) >= 2, f"need two checkpoints, have {steps}; seed {SEED}"
    newest = run_dir / "checkpoints" / f"ckpt_{steps[-1]:08d}.pt"
    raw = newest.read_bytes()
    newest.write_bytes(raw[: len(raw) * 2 // 3])
    total = steps[-1] + 12
    proc, err = t.start(total)
    assert proc.wait(120) == 0, err.read_text(errors="replace")
    text = err.read_text(errors="replace")
    assert f"checkpoint {newest} is damaged or truncated (checksum mismatch)" in text
    assert "using the previous checkpoint" in text
    assert started_from(err) == steps[-2], f"seed {SEED}:\n{text}"
    assert f"completed at step {total}" in text
    assert (newest.parent / (newest.name + ".damaged")).exists()
    assert not temps[0].exists(), "the dead writer's temp file should be cleaned up"

    final = assert_resumable(run_dir, "after completion")
    assert final == total
    rows, _ = RunFolder(run_dir).read_metrics(0)
    assert [r["step"] for r in rows] == list(range(1, total + 1)), f"seed {SEED}"
    info = RunFolder(run_dir).read_info()
    assert info["total_steps"] == total
    assert all(step <= total for step, _ in RunFolder(run_dir).list_samples())

    # (6) disk full, for real: the child's RLIMIT_FSIZE is set below a checkpoint's size,
    # so the kernel refuses the write (EFBIG) exactly where a full disk (ENOSPC) would.
    import resource
    before = {p.name: p.read_bytes() for p in list_checkpoints(run_dir / "checkpoints")}
    limit = min(len(b) for b in before.values()) // 2
    for name in ("metrics.jsonl", "events.log", "run.json"):
        assert (run_dir / name).stat().st_size < limit // 2, f"{name} too big for the test"

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc, err = t.start(total + 12, preexec=small_files)
    code = proc.wait(120)
    text = err.read_text(errors="replace")
    assert code == 1, text
    assert "error: could not write a checkpoint to" in text
    assert "the file size limit was reached" in text
    assert "the older checkpoints are intact" in text
    assert "Traceback" not in text
    after = {p.name: p.read_bytes() for p in list_checkpoints(run_dir / "checkpoints")}
    assert after == before
    assert not [p for p in (run_dir / "checkpoints").iterdir() if TEMP_RE.match(p.name)]
    assert "ERROR" in (run_dir / "events.log").read_text()


def test_no_space_left_on_device_in_process(tmp_path, tiny_spec, monkeypatch):
    """ENOSPC itself (monkeypatched: a real full disk cannot be made portably): the run
    fails with a clear message, older checkpoints verify, no temp file is left."""
    from ganstudio.core.engine import Engine, EngineSettings
    images = torch.from_numpy(np.random.default_rng(2).integers(0, 255, (4, 3, 8, 8),
                                                                dtype=np.uint8))
    settings = EngineSettings(total_steps=9, device="cpu", checkpoint_every_s=0,
                              checkpoint_every_steps=3, sample_every_s=1e9, n_samples=4)
    if hasattr(settings, "monitors"):
        settings.monitors = False
    real = ckpt_mod._write_all
    writes = []

    def filling_disk(f, header, payload):
        writes.append(len(payload))
        if len(writes) >= 3:
            f.write(header)
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, header, payload)

    monkeypatch.setattr(ckpt_mod, "_write_all", filling_disk)
    eng = Engine(tiny_spec, tmp_path / "run", images=images, settings=settings)
    eng.prepare()
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed) and failed.step == 9
    assert "the disk is full (No space left on device)" in failed.message
    assert "older checkpoints are intact" in failed.message
    ckpts = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in ckpts] == ["ckpt_00000003.pt", "ckpt_00000006.pt"]
    assert all(verify_checkpoint(p) is None for p in ckpts)
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == [p.name for p in ckpts]
    log = (tmp_path / "run" / "events.log").read_text()
    assert "the disk is full" in log
    json.loads((tmp_path / "run" / "run.json").read_text())
