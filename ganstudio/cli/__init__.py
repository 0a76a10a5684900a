"""The ``ganstudio`` command: the studio (no subcommand) and headless subcommands.

``COMMANDS`` below is the whole list of subcommands, in the order ``--help``
shows them. A command is a ``Command`` row (name, help, ``configure(parser)``,
``run(args) -> exit code``) defined in the module of its family; adding one is
one line here. Exit codes and error wording follow ``exits.py`` (user errors:
one line, exit 2) and ``messages.py``; progress lines come from ``progress.py``.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

# Before torch is imported (OpenMP reads it once): idle OpenMP threads sleep instead of
# spinning. With the default (spin) policy, training from the main thread on a 2-core CPU
# burned 29-43 ms of CPU per image against 22-23 ms with this (DCGAN, 64 px); the spinning
# threads compete with the working ones. A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ganstudio.bench import cli as bench_cli  # noqa: E402
from ganstudio.cli import compare, explore, plugins, sample, studio, style, train  # noqa: E402
from ganstudio.cli.command import Command  # noqa: E402
from ganstudio.cli.exits import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,  # noqa: E402,F401
                                 EXIT_USAGE, run_command)
from ganstudio.cli.progress import ConsoleProgress  # noqa: E402,F401

COMMANDS: tuple[Command, ...] = (
    train.TRAIN,
    sample.SAMPLE,
    plugins.PLUGINS,
    plugins.SETTINGS,
    studio.GUI,
    style.STYLIZE,
    style.STYLIZE_TRAIN,
    Command("bench", bench_cli.HELP, bench_cli.configure, bench_cli.cmd_bench,
            description=bench_cli.DESCRIPTION),
    plugins.PLUGIN,
    compare.COMPARE_PRESETS,
    *explore.COMMANDS,
)


def build_parser() -> argparse.ArgumentParser:
    from ganstudio import __version__
    parser = argparse.ArgumentParser(
        prog="ganstudio",
        description="GAN Studio: train generative models on your own images. "
                    "Without a subcommand the studio window opens.")
    parser.add_argument("--version", action="version", version=f"ganstudio {__version__}")
    parser.add_argument("--plugins-dir", default=None,
                        help="folder of single-file plugins (default: the user data folder; "
                             "or $GANSTUDIO_PLUGINS_DIR)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(sub)
    # --plugins-dir is also accepted after the subcommand ("ganstudio plugins --plugins-dir X");
    # SUPPRESS keeps a value given before the subcommand.
    for subparser in sub.choices.values():
        if "--plugins-dir" not in subparser._option_string_actions:
            subparser.add_argument("--plugins-dir", default=argparse.SUPPRESS,
                                   help="folder of single-file plugins")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        studio.no_command_defaults(args)
    return run_command(args.func, args)
