"""A testing hook: SIGKILL this process at a named point of its own progress.

Resuming after a crash is a promise (README: "interrupt it at any point and run the same command again"),
and a promise is only kept if a test breaks it on purpose at the moments that matter. Killing a process
after a delay measured by the clock lands wherever the machine happens to be (on a loaded machine, often
before any work has begun), so the code names its risky moments instead, with one-line
``crash_point(NAME)`` calls, and a test picks one:

    XLPEFT_CRASH_AT=<point>       SIGKILL the first time the process reaches <point>
    XLPEFT_CRASH_AT=<point>#<k>   ... the k-th time (1-based, counted in this process)
    XLPEFT_CRASH_MARK=<file>      before dying, write <point> to <file> (fsync'd): the test's proof that
                                  the crash happened where it claims

Without ``XLPEFT_CRASH_AT`` a crash point costs one environment lookup. The names below are the only
points; a test refers to them by these constants, so code and tests cannot drift apart.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

TEXT_CACHE_CHUNK = "text-cache-chunk"  # heads/text_cache.py: a chunk encoded, the cache not yet packed
TRAIN_BATCH = "train-batch"  # training/trainer.py: after an optimizer step inside an epoch
TRAIN_EPOCH_END = "train-epoch-end"  # training/trainer.py: after an evaluation's checkpoint (an epoch's end, or
# every --eval-every steps), before training goes on
EVALUATE_CHUNK = "evaluate-chunk"  # evaluation/predict.py: a chunk of one language predicted, rows not written
EVALUATE_LANGUAGE_WRITTEN = "evaluate-language-written"  # evaluation/evaluate.py: a language's table written
LANGUAGE_MODULE_STEP = "language-module-step"  # training/language_module.py: after an optimizer step
LANGUAGE_MODULE_CHECKPOINT = "language-module-checkpoint"  # training/language_module.py: after a checkpoint
BEFORE_RENAME = "before-rename"  # runs.py atomic_write: temp file written, not yet renamed

CRASH_AT, CRASH_MARK = "XLPEFT_CRASH_AT", "XLPEFT_CRASH_MARK"
_reached: Counter = Counter()


def before_rename(file_name: str) -> str:
    """The point at which the atomic write of a file called ``file_name`` has its data but not its name."""
    return f"{BEFORE_RENAME}:{file_name}"


def crash_point(name: str, detail: str | None = None) -> None:
    """SIGKILL this process here if ``XLPEFT_CRASH_AT`` names this point (``name`` or ``name:detail``)."""
    wanted = os.environ.get(CRASH_AT)
    if not wanted:
        return
    point = name if detail is None else f"{name}:{detail}"
    target, _, nth = wanted.partition("#")
    if target != point:
        return
    _reached[point] += 1
    if _reached[point] < int(nth or 1):
        return
    mark = os.environ.get(CRASH_MARK)
    if mark:
        with open(mark, "w") as f:
            f.write(wanted)
            f.flush()
            os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)
