"""``ganstudio gui`` (and ``ganstudio`` alone): open the studio window."""
from __future__ import annotations

import argparse
from pathlib import Path

from ganstudio.cli.command import Command
from ganstudio.cli.messages import shown


def configure(p: argparse.ArgumentParser) -> None:
    """The studio's options (also read by the demo launcher through ``build_parser``)."""
    p.add_argument("--data", help="folder of training images")
    p.add_argument("--model", help="model id (see 'ganstudio plugins')")
    p.add_argument("--run", help="run folder to open or create")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model setting (repeatable)")
    p.add_argument("--autostart", action="store_true", help="start training at once")
    p.add_argument("--steps", type=int, default=None, help="total training steps")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto (bf16 where it is faster), fp32 or bf16")
    p.add_argument("--runs-root", default=None, metavar="DIR",
                   help="folder where new runs are created and the run browser looks")
    p.add_argument("--theme", choices=("dark", "light"), default=None,
                   help="colour theme (default: dark, or the last one chosen)")


def no_command_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``ganstudio`` without a subcommand: the studio with every option at its default."""
    args.data = args.model = args.run = None
    args.set, args.autostart, args.steps, args.device = [], False, None, "auto"
    args.func = cmd_gui
    return args


def cmd_gui(args: argparse.Namespace) -> int:
    from ganstudio.core.errors import UserError
    data = getattr(args, "data", None)
    if data is not None and not Path(data).expanduser().is_dir():
        raise UserError(f"image folder not found: {shown(data)}")
    if getattr(args, "autostart", False) and data is None and not getattr(args, "run", None):
        raise UserError("--autostart needs --data DIR (or --run RUN to resume)")
    try:
        from ganstudio.gui.app import run_studio
    except ImportError as e:
        raise UserError(f"the studio needs PySide6 and pyqtgraph ({e}); "
                        "pip install PySide6-Essentials pyqtgraph") from None
    return run_studio(args)


GUI = Command("gui", "open the studio window", configure, cmd_gui)
