"""Run ``xlpeft`` commands as separate processes that start in milliseconds, for the crash tests.

A fresh interpreter spends 6-9 s importing torch, transformers and PEFT on a shared 2-core machine,
more than the tiny commands themselves; a crash test runs about twenty of them. multiprocessing's
forkserver imports xlpeft once in a clean server process (which never runs a torch operation, so no
thread pool is copied) and forks each command from it: every command is still its own process, with
its own environment, that a SIGKILL ends without any cleanup, exactly like ``python -m xlpeft.cli``.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

from xlpeft import faults

PRELOAD = ["xlpeft.cli", "xlpeft.experiments.runner", "xlpeft.training.trainer", "xlpeft.evaluation.evaluate",
           "xlpeft.training.language_module", "forked_cli"]


def _command(argv: list[str], env: dict[str, str], log: str) -> None:
    """In the forked process: the environment, output into ``log``, then the command line itself."""
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from xlpeft.cli import main

    sys.exit(main(argv))


class ForkedCli:
    """``cli(*args, crash_at=POINT, mark=FILE)`` runs ``xlpeft ARGS`` in a new process and returns its exit
    code (negative: killed by that signal); ``log`` keeps every command's output for failure messages."""

    def __init__(self, log: Path):
        self.log = log
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)

    def __call__(self, *args, crash_at: str | None = None, mark: Path | None = None) -> int:
        env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", faults.CRASH_AT: crash_at or "",
               faults.CRASH_MARK: str(mark or "")}
        process = self.context.Process(target=_command, args=([str(a) for a in args], env, str(self.log)))
        process.start()
        process.join()
        return process.exitcode

    def output(self) -> str:
        """The last lines the commands wrote (tracebacks of a failed one)."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:]) if self.log.exists() else ""
