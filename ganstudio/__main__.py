import os
import sys

from ganstudio.cli import main

code = main()
if not code and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 and "RANK" in os.environ:
    # A rank of a distributed run (torchrun's environment) that ended well: everything
    # is written and closed by now. Leave without the interpreter's teardown, in which
    # the process group's communication threads can abort the process ("terminate
    # called without an active exception") after a run that completed. A rank that
    # failed exits the usual way, so the launcher sees which one failed first.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
raise SystemExit(code)
