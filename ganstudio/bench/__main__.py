"""``python -m ganstudio.bench``: the benchmark without the rest of the command line.

Same options as ``ganstudio bench``; useful on a bare GPU server where only the
engine's dependencies are installed.
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from ganstudio.cli_bench import cmd_bench, configure
    from ganstudio.core.errors import UserError

    parser = argparse.ArgumentParser(prog="python -m ganstudio.bench",
                                     description="GAN Studio benchmark (see ganstudio bench)")
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_bench(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
