"""Entry point of one worker process started by `portico serve --workers N`.

Not a command for users: the supervisor starts it with the concrete address and
`PORTICO_WORKER=<index>:<parent pid>` in the environment.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

from .app import serve_worker
from .workers import WORKER_ENV

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Ask Linux for SIGTERM when the supervisor dies, even by SIGKILL, so no worker is orphaned."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the supervisor died before the request took effect
        sys.exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(prog="portico-worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--config")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    index, _, parent = os.environ.get(WORKER_ENV, "").partition(":")
    if not index.isdigit() or not parent.isdigit():
        parser.error(f"{WORKER_ENV} must be <index>:<parent pid>; this entry point is started by `portico serve`")
    _die_with_parent(int(parent))
    return serve_worker(args.config, args.address, int(index), args.workers)


if __name__ == "__main__":
    sys.exit(main())
