"""The embedded server's process: llama-cpp-python's server, stopped when its parent goes away.

A killed test run or evaluation must not leave a 1 GB model resident. Linux's PR_SET_PDEATHSIG
is no use here: it fires when the *thread* that started the child exits, and the server is often
started from a worker thread. So a daemon thread polls the parent's pid instead.

    python -m llm_extract.llm.child PARENT_PID [llama_cpp.server arguments...]
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

#: Seconds between checks that the parent is still alive.
PARENT_POLL_S = 1.0


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down cleanly on SIGTERM
    time.sleep(10)
    os._exit(1)  # it did not: leave anyway


def main(argv: list[str]) -> None:
    parent, args = int(argv[0]), argv[1:]
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
    sys.argv = ["llama_cpp.server", *args]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
