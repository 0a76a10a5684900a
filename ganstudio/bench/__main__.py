"""``python -m ganstudio.bench``: the benchmark without the rest of the command line.

Same options as ``ganstudio bench``; useful on a bare GPU server where only the
engine's dependencies are installed.
"""
from ganstudio.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
