"""``ganstudio train``: train a model headless on a folder of images.

``train_parser_defaults`` and ``TrainRequest`` hold the options once: the
command's parser is built from them, and other commands that train (e.g.
``stylize-train``) fill a ``TrainRequest`` and call ``run_training``.
"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganstudio.cli import launch
from ganstudio.cli.command import Command
from ganstudio.cli.exits import EXIT_FAILED, EXIT_OK
from ganstudio.cli.messages import failure_lines, shown


@dataclass
class TrainRequest:
    """Everything ``ganstudio train`` needs, whoever asks for it."""

    out: str
    model: str | None = None
    data: str | None = None
    steps: int | None = None
    set: list[str] = field(default_factory=list)        # KEY=VALUE items, as typed
    device: str = "auto"
    precision: str = "auto"
    resume: bool = False
    restart: bool = False
    init_from: str | None = None                        # RUN[:CHECKPOINT] to start from
    checkpoint_every: float = 120.0
    checkpoint_steps: int = 0
    sample_every: float = 5.0
    sample_steps: int = 0
    log_steps: int = 0
    keep_checkpoints: int = 3
    alarm_steps: int = 0
    quality_steps: int = 0
    no_monitors: bool = False
    quiet: bool = False
    no_estimate: bool = False
    plugins_dir: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TrainRequest":
        names = [f.name for f in dataclasses.fields(cls)]
        return cls(**{n: getattr(args, n) for n in names if hasattr(args, n)})


_D = TrainRequest(out="")   # the defaults, for the parser's help


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model id, e.g. dcgan")
    p.add_argument("--data", help="folder of training images (searched recursively)")
    p.add_argument("--out", required=True, help="run folder to write (or resume)")
    p.add_argument("--steps", type=int, default=None,
                   help="total steps of the run (resume continues up to it; default 10000)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model setting, e.g. --set lr_d=1e-4 (repeatable; "
                        "'ganstudio settings MODEL' lists them)")
    p.add_argument("--device", default=_D.device, help="auto (default), cpu, cuda or mps")
    p.add_argument("--precision", default=_D.precision, help="auto (default), fp32 or bf16")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--restart", action="store_true",
                   help="start the run in --out over from step 0; its history moves to "
                        "--out/previous-<date>-<time>/")
    p.add_argument("--init-from", metavar="RUN[:CHECKPOINT]", default=None,
                   help="start a new run from another run's network weights (fine-tuning; "
                        "same model, its settings unless --set changes them; CHECKPOINT: a "
                        "step or a checkpoint file name, default the newest)")
    p.add_argument("--checkpoint-every", type=float, default=_D.checkpoint_every,
                   metavar="SECONDS", help="seconds between checkpoints (default 120; inf: "
                                           "only at the end and every --checkpoint-steps)")
    p.add_argument("--checkpoint-steps", type=int, default=_D.checkpoint_steps, metavar="N",
                   help="also checkpoint every N steps")
    p.add_argument("--sample-every", type=float, default=_D.sample_every, metavar="SECONDS",
                   help="seconds between sample grids (default 5)")
    p.add_argument("--sample-steps", type=int, default=_D.sample_steps, metavar="N",
                   help="save a sample grid every N steps instead")
    p.add_argument("--log-steps", type=int, default=_D.log_steps, metavar="N",
                   help="also log metrics every N steps (default: every 100 ms)")
    p.add_argument("--keep-checkpoints", type=int, default=_D.keep_checkpoints, metavar="N",
                   help="checkpoints to keep (default 3)")
    p.add_argument("--alarm-steps", type=int, default=_D.alarm_steps, metavar="N",
                   help="check for collapse / imbalance every N steps (default: every 20 s)")
    p.add_argument("--quality-steps", type=int, default=_D.quality_steps, metavar="N",
                   help="measure KID / FID every N steps (default: every 120 s)")
    p.add_argument("--no-monitors", action="store_true",
                   help="no collapse / imbalance alarm and no KID / FID")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-estimate", action="store_true",
                   help="start at once, without measuring a few steps to estimate the "
                        "run's time")
    launch.add_arguments(p)


def cmd_train(args: argparse.Namespace) -> int:
    if launch.launch_requested(args):       # --nproc-per-node: torchrun's launcher
        return launch.run_launched(TrainRequest.from_args(args), args, run_training)
    return run_training(TrainRequest.from_args(args))


def run_training(req: TrainRequest) -> int:
    """Prepare, train until done or stopped (Ctrl-C: checkpoint and stop), report."""
    from ganstudio.cli.progress import ConsoleProgress, CountProgress
    from ganstudio.core import events as ev
    from ganstudio.core.config import parse_set_args
    from ganstudio.core.distributed import rank_info
    from ganstudio.core.engine import Engine
    from ganstudio.core.errors import UserError
    from ganstudio.core.runs import RunFolder
    from ganstudio.plugins import get_plugin_manager

    check_intervals(req)
    pm = get_plugin_manager(req.plugins_dir)
    overrides = parse_set_args(req.set)
    run = RunFolder(req.out)
    model_id = req.model
    if model_id is None:
        if (req.resume or req.restart) and run.exists():
            model_id = run.read_info()["model_id"]
        elif req.init_from:    # fine-tuning: the source run's model
            from ganstudio.core.finetune import split_reference
            model_id = RunFolder(split_reference(req.init_from)[0]).read_info()["model_id"]
        elif req.resume or req.restart:
            raise UserError(f"nothing to resume: {shown(run.path)} holds no run (no run.json); "
                            "give --model and --data to start one there")
        else:
            raise UserError("--model is required (see 'ganstudio plugins' for the installed models)")
    spec = pm.get_model(model_id)
    if req.resume and not run.exists():
        if req.data is None:
            raise UserError(f"nothing to resume: {shown(run.path)} is not a run folder")
        # Killed before run.json was written (or never started): --resume with --model and
        # --data always works, so a restart script needs no special case.
        print(f"nothing to resume in {shown(run.path)} yet; starting a new run", file=sys.stderr)
    from ganstudio.core.model import FOLDER_KINDS
    if spec.kind not in FOLDER_KINDS:
        raise UserError(f"model '{spec.id}' is not trained on a folder; use 'ganstudio stylize'")
    if req.data is None and not ((req.resume or req.restart) and run.exists()):
        raise UserError("--data DIR is required (the folder of training images)")
    if req.data is not None and not Path(req.data).expanduser().is_dir():
        if Path(req.data).expanduser().exists():
            raise UserError(f"--data must be a folder of images, not a file: {shown(req.data)}")
        raise UserError(f"image folder not found: {shown(req.data)}")
    total = req.steps
    if total is None:
        total = int(run.read_info().get("total_steps", 10_000)) if run.exists() else 10_000
    if total < 1:
        raise UserError(f"--steps must be at least 1, got {total}")
    if req.resume and req.steps is not None and run.exists():
        from ganstudio.core.checkpoints import NAME_RE, list_checkpoints
        done = max((int(NAME_RE.match(c.name).group(1))
                    for c in list_checkpoints(run.checkpoints_dir)), default=None)
        if done is not None and total <= done:
            raise UserError(f"{shown(run.path)} is already at step {done}; --steps is the "
                            f"total to reach, so give more than {done} "
                            f"(e.g. --steps {done + 1000})")
    # ranks other than 0 of a distributed run print only their errors; rank 0 reports
    follower = not rank_info().is_writer
    progress = ConsoleProgress(quiet=req.quiet)
    engine = Engine(spec, req.out, data_folder=req.data, overrides=overrides,
                    settings=engine_settings(req, total), resume=req.resume,
                    restart=req.restart,
                    init_from=req.init_from,
                    listeners=[] if follower else [progress,
                                                   pm.metrics_listener(str(run.path))],
                    plugin_version=pm.plugin_version(spec))

    preparing = CountProgress("preparing images", quiet=req.quiet or follower)
    engine.prepare(progress=preparing)
    preparing.finish()
    if engine.init_record is not None and not follower:
        rec = engine.init_record
        print(f"fine-tuning: starting from the networks of {shown(rec['run'])} at step "
              f"{rec['step']} ({rec['checkpoint']}); optimizers and step start afresh",
              file=sys.stderr)
    if engine.history_moved_to is not None:
        print(f"started over; the earlier history is in {shown(engine.history_moved_to)}",
              file=sys.stderr)
    if engine.report is not None and not follower:
        print("dataset: " + shown(engine.report.summary()), file=sys.stderr)
        if engine.chosen_from_data.get("channels") == 1:
            print("  every image is greyscale: training in 1 channel "
                  "(--set channels=3 trains in colour)", file=sys.stderr)
        for line in engine.report.lines(limit=50)[1:]:  # skipped and converted files
            if not line.startswith("warning: "):  # dataset warnings arrive as events
                print(f"  {shown(line)}", file=sys.stderr)

    if not req.no_estimate and not rank_info().distributed:  # one process's time says
        from ganstudio.cli.estimate import print_estimate      # little about N of them
        print_estimate(spec, engine.config, total, device=req.device,
                       precision=req.precision, start_step=engine.step)

    result = _run_with_ctrl_c(engine)
    if isinstance(result, ev.Failed):
        for line in failure_lines(result, req.out, engine.run.events_path):
            print(line, file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def check_intervals(req: TrainRequest) -> None:
    """Refuse interval options that would silently mean something else (0 or -1 kept
    every checkpoint, a NaN period never sampled)."""
    import math
    from ganstudio.core.errors import UserError
    for option, seconds in (("--checkpoint-every", req.checkpoint_every),
                            ("--sample-every", req.sample_every)):
        if math.isnan(seconds) or seconds <= 0:
            raise UserError(f"{option} must be a number of seconds above 0 (inf: never), "
                            f"got {seconds:g}")
    for option, steps in (("--checkpoint-steps", req.checkpoint_steps),
                          ("--sample-steps", req.sample_steps),
                          ("--log-steps", req.log_steps), ("--alarm-steps", req.alarm_steps),
                          ("--quality-steps", req.quality_steps)):
        if steps < 0:
            raise UserError(f"{option} must be 0 (off) or a number of steps, got {steps}")
    if req.keep_checkpoints < 1:
        raise UserError(f"--keep-checkpoints must be at least 1, got {req.keep_checkpoints}")


def engine_settings(req: TrainRequest, total: int) -> Any:
    from ganstudio.core.engine import EngineSettings
    return EngineSettings(
        total_steps=total, device=req.device, precision=req.precision, on_nan="stop",
        checkpoint_every_s=req.checkpoint_every, sample_every_s=req.sample_every,
        keep_checkpoints=req.keep_checkpoints,
        checkpoint_every_steps=req.checkpoint_steps, sample_every_steps=req.sample_steps,
        log_every_steps=req.log_steps, monitors=not req.no_monitors,
        alarm_every_steps=req.alarm_steps, quality_every_steps=req.quality_steps)


def _run_with_ctrl_c(engine: Any) -> Any:
    """Run the loop; the first Ctrl-C (or SIGTERM) stops after the step with a checkpoint,
    the second aborts."""
    interrupted = {"n": 0}

    def on_sigint(signum, frame):
        interrupted["n"] += 1
        if interrupted["n"] == 1:
            print("\nstopping after this step and writing a checkpoint "
                  "(Ctrl-C again to abort without one)", file=sys.stderr, flush=True)
            engine.stop()
        else:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, on_sigint)
    old_term = signal.signal(signal.SIGTERM, on_sigint)
    try:
        return engine.run_loop()
    finally:
        signal.signal(signal.SIGINT, old)
        signal.signal(signal.SIGTERM, old_term)


TRAIN = Command("train", "train a model headless on a folder of images", configure, cmd_train)
