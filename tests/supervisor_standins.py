"""Stand-in workers for tests/api/test_supervisor.py, in a top-level module of their own.

The supervisor starts workers with multiprocessing's spawn, so a child imports its target by
module name. A test module's name under pytest's importlib mode is `tests.api....`, and
`tests` can resolve to another distribution's package in site-packages (gruut ships one):
a module on the tests' own path (`pythonpath = ["tests"]`) is found the same way everywhere.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from voxhost.api import supervisor


def fail_at_start(sock, index: int) -> None:
    sys.exit(3)  # e.g. bad settings: every worker fails alike


def orphan_candidate(sock, index: int) -> None:
    supervisor.exit_with_parent()
    Path(os.environ["WORKER_PID_FILE"]).write_text(str(os.getpid()))
    time.sleep(600)  # until signalled: the default SIGTERM action ends it
