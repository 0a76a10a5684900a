"""``ganstudio train --nproc-per-node N``: the launcher's options and its console words.

The launch itself is :func:`ganstudio.core.launcher.launch` (torchrun's
launcher, in-process). Each worker runs the very ``ganstudio train`` command
line given, minus these options, with torchrun's environment; the plain
``torchrun --nproc-per-node N -m ganstudio train ...`` starts the same workers.
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from typing import Any

from ganstudio.cli.exits import EXIT_OK
from ganstudio.cli.messages import error_line, shown

#: TrainRequest fields that are not ``train`` options of their own name
_NOT_OPTIONS = {"plugins_dir"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "several processes (one per GPU; on a CPU they share its cores)",
        "The batch_size setting is per process: one step trains on N times as many "
        "images. Learning rates are not rescaled; raise them yourself if you keep the "
        "per-process batch (or lower batch_size to keep the global one).")
    g.add_argument("--nproc-per-node", default=None, metavar="N|gpu",
                   help="train on N processes on this machine (gpu: one per visible GPU), "
                        "with torchrun's launcher; the model must declare capability ddp")
    g.add_argument("--nnodes", default="1", metavar="N",
                   help="machines taking part (default 1); start the same command on each")
    g.add_argument("--rdzv-endpoint", default="", metavar="HOST:PORT",
                   help="several machines: where they meet (one machine's address and a "
                        "free port, the same on all)")
    g.add_argument("--rdzv-id", default="", metavar="ID",
                   help="several machines: a name for this run, the same on all")


def launch_requested(args: argparse.Namespace) -> bool:
    return getattr(args, "nproc_per_node", None) is not None


def worker_argv(req: Any) -> list[str]:
    """The ``train`` command line each worker runs, rebuilt from a TrainRequest: every
    option that differs from its default, in the parser's spelling."""
    defaults = type(req)(out="")
    argv = ["train"]
    if req.plugins_dir:
        argv += ["--plugins-dir", str(req.plugins_dir)]
    for f in dataclasses.fields(req):
        if f.name in _NOT_OPTIONS:
            continue
        value, default = getattr(req, f.name), getattr(defaults, f.name)
        option = "--" + f.name.replace("_", "-")
        if f.name == "out":
            argv += [option, str(value)]
        elif value == default or value is None:
            continue
        elif isinstance(value, bool):
            argv.append(option)
        elif isinstance(value, list):
            for item in value:
                argv += [option, str(item)]
        else:
            argv += [option, str(value)]
    return argv


def run_launched(req: Any, args: argparse.Namespace, run_training: Any) -> int:
    """Start the workers with torchrun's launcher; say how the run ended. One process
    on one machine needs no launcher: ``run_training(req)`` trains it here."""
    from ganstudio.core.launcher import launch, processes_per_node

    nproc = processes_per_node(args.nproc_per_node)
    if nproc == 1 and str(args.nnodes) == "1":
        return run_training(req)
    _check_model(req, nproc)
    result = launch(worker_argv(req), nproc_per_node=nproc, run_dir=req.out,
                    nnodes=str(args.nnodes), rdzv_endpoint=args.rdzv_endpoint,
                    rdzv_id=args.rdzv_id)
    if result.ok:
        return EXIT_OK
    for failure in result.failures:
        print(error_line(failure.describe()), file=sys.stderr)
    if result.failures and result.exit_code != 2:
        again = [a for a in worker_argv(req)[1:] if a != "--resume"]
        print("every rank was stopped; to continue: ganstudio train --resume "
              f"--nproc-per-node {nproc} {' '.join(shlex.quote(shown(a)) for a in again)}",
              file=sys.stderr)
    return result.exit_code


def _check_model(req: Any, nproc: int) -> None:
    """Refuse before starting anything when the model cannot train on several processes."""
    from ganstudio.core.distributed import RankInfo, check_capability
    from ganstudio.core.runs import RunFolder
    from ganstudio.plugins import get_plugin_manager
    model_id = req.model
    run = RunFolder(req.out)
    if model_id is None and req.resume and run.exists():
        model_id = run.read_info()["model_id"]
    if model_id is None:
        return                          # the workers say what is missing
    spec = get_plugin_manager(req.plugins_dir).get_model(model_id)
    check_capability(spec, RankInfo(0, nproc, 0, nproc))
