"""Regenerate the measured numbers in README.md and docs/ from real runs, stamped with date, commit and machine.

Every measured table in the docs sits between two markers::

    <!-- regenerate:NAME -->
    ... written by this script, never by hand ...
    <!-- /regenerate:NAME -->

and is produced by one target of this script, which runs the real command, times it and rewrites the
block (and nothing else) with a stamp line: UTC date, commit (``+dirty`` when the tree has uncommitted
changes), CPU, cores, memory, and the versions of torch and transformers. Re-run a target after any
change to the path it measures; a block whose stamp names an older commit than the measured code is
stale.

Targets::

    python benchmarks/regenerate_docs.py quickstart [--data-dir DIR] [--out runs/quickstart] [--reuse]
        runs `xlpeft run configs/quickstart.yaml` and `xlpeft report`, then rewrites README's
        `quickstart-time`, `quickstart-summary` and `quickstart-claims` blocks and the by-distance figure
    python benchmarks/regenerate_docs.py bench --model MODEL [--precision fp32|bf16] [BENCH_SPEED_ARGS ...]
        runs benchmarks/bench_speed.py and rewrites docs/benchmarks.md's `bench-MODEL-PRECISION` block

``--reuse`` keeps an existing grid directory (the run then only finishes what is missing, so its wall
time is not the full job's: the time block says so).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BENCHMARKS = REPO / "docs" / "benchmarks.md"
QUICKSTART = REPO / "configs" / "quickstart.yaml"
FIGURE = REPO / "docs" / "img" / "quickstart_by_distance.png"
SHOWN_LANGUAGES = {"eng_Latn": "English", "fra_Latn": "French", "zho_Hans": "Chinese", "hin_Deva": "Hindi",
                   "swh_Latn": "Swahili"}


# ---------------------------------------------------------------------------------------------- stamping

def stamp() -> str:
    """One line naming when, at which commit and on what machine a block was measured."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = "+dirty" if _git("status", "--porcelain", "--untracked-files=no") else ""
    import torch
    import transformers

    return (f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC at commit {commit}{dirty} on {_cpu()}, "
            f"{os.cpu_count()} cores, {_memory_gib():.0f} GiB; Python {platform.python_version()}, "
            f"torch {torch.__version__}, transformers {transformers.__version__}.")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


def replace_block(path: Path, name: str, body: str) -> None:
    """Rewrite the block ``name`` of ``path`` (markers kept); a missing block is an error, not an append."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- regenerate:{re.escape(name)} -->\n).*?(<!-- /regenerate:{re.escape(name)} -->)",
                         re.DOTALL)
    if not pattern.search(text):
        sys.exit(f"{path.relative_to(REPO)} has no block '{name}': add the markers "
                 f"<!-- regenerate:{name} --> and <!-- /regenerate:{name} --> where the numbers belong")
    path.write_text(pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text, count=1),
                    encoding="utf-8")
    print(f"rewrote {path.relative_to(REPO)} block '{name}'")


# -------------------------------------------------------------------------------------------- quickstart

@dataclass
class Timed:
    seconds: float

    def __str__(self) -> str:
        minutes, seconds = divmod(round(self.seconds), 60)
        return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def run_timed(command: list[str]) -> Timed:
    print("$", " ".join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True)
    return Timed(time.perf_counter() - start)


def quickstart(args: argparse.Namespace) -> None:
    """Run the README's main job from scratch (or finish it with ``--reuse``) and rewrite its blocks."""
    out = Path(args.out)
    if (REPO / out).exists() and not args.reuse:
        sys.exit(f"{out} exists: move it away for a full measurement, or pass --reuse to finish it (timings are "
                 "then partial)")
    stamp_line = stamp()
    xlpeft = [sys.executable, "-m", "xlpeft.cli"]
    run_time = run_timed([*xlpeft, "run", str(QUICKSTART.relative_to(REPO)), "--out", str(out),
                          "--data-dir", args.data_dir])
    report_time = run_timed([*xlpeft, "report", str(out)])
    report = REPO / out / "report"
    replace_block(README, "quickstart-time", _time_block(stamp_line, run_time, report_time, REPO / out, args.reuse))
    replace_block(README, "quickstart-summary", _summary_block(report))
    replace_block(README, "quickstart-claims", _claims_block(report))
    shutil.copyfile(report / "by_distance.png", FIGURE)
    print(f"copied {FIGURE.relative_to(REPO)}")


def _time_block(stamp_line: str, run_time: Timed, report_time: Timed, out: Path, reused: bool) -> str:
    train = _training_seconds(out)
    partial = " (finishing a partly done grid: not the full job's time)" if reused else ""
    return (f"{stamp_line} `xlpeft run` took {run_time}{partial} and `xlpeft report` {report_time}; "
            f"training the grid's runs took {Timed(train)} of the run (the sum of their epochs' times), "
            "evaluation the rest.")


def _training_seconds(out: Path) -> float:
    import json

    total = 0.0
    for log in (out / "runs").glob("*/train_log.jsonl"):
        for line in log.read_text().splitlines():
            total += float(json.loads(line)["train_seconds"])
    return total


def _summary_block(report: Path) -> str:
    import pandas as pd

    summary = pd.read_csv(report / "summary.csv")
    per_language = pd.read_csv(report / "per_language.csv").set_index("language")
    shown = [code for code in SHOWN_LANGUAGES if code in per_language.index]
    lines = [f"| configuration | mean over {int(summary['languages'].max())} languages | 95 % CI over seeds | seeds | "
             + " | ".join(SHOWN_LANGUAGES[c] for c in shown) + " |",
             "|---|---|---|---|" + "---|" * len(shown)]
    for _, row in summary.iterrows():
        config = row["configuration"]
        cells = [_pct(per_language.loc[code, config]) for code in shown]
        lines.append(f"| {config} | {_pct(row['mean'])} % | [{_pct(row['ci_low'])}, {_pct(row['ci_high'])}] | "
                     f"{int(row['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _claims_block(report: Path) -> str:
    """The report's findings (findings.csv): claim, comparison, estimate with its seed and language intervals,
    seeds, languages and verdict."""
    import pandas as pd

    path = report / "findings.csv"
    if not path.is_file():
        return "(this report has no findings table)"
    findings = pd.read_csv(path)
    lines = ["| claim | comparison | statistic | estimate | interval over seeds | interval over languages | seeds | "
             "languages | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for _, row in findings.iterrows():
        lines.append(f"| {row['claim']} | {row['comparison']} | {row['statistic']} | {_cell(row['estimate'])} | "
                     f"[{_cell(row['seed_low'])}, {_cell(row['seed_high'])}] | "
                     f"[{_cell(row['language_low'])}, {_cell(row['language_high'])}] | {int(row['seeds'])} | "
                     f"{int(row['languages'])} | {row['verdict']} |")
    return "\n".join(lines)


def _pct(value: float) -> str:
    return "–" if value != value else f"{100 * value:.1f}"


def _cell(value) -> str:
    if isinstance(value, float):
        return "–" if value != value else f"{value:.3g}"
    return str(value)


# -------------------------------------------------------------------------------------------- benchmarks

def bench(args: argparse.Namespace, extra: list[str]) -> None:
    """Run bench_speed.py and put its tables, under a stamp, into docs/benchmarks.md."""
    stamp_line = stamp()
    command = [sys.executable, "benchmarks/bench_speed.py", "--model", args.model, "--precision", args.precision,
               "--data-dir", args.data_dir, *extra]
    print("$", " ".join(command), flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:  # the tables so far and the failing child's traceback, not only an exit status
        sys.exit(f"{done.stdout}\n{done.stderr}\nbench_speed.py failed (exit {done.returncode}): no block rewritten")
    lines = [line for line in done.stdout.splitlines() if not line.startswith(("RESULT ", "# bench_speed"))]
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    preamble = "\n".join(line for line in lines[:first_table] if line.strip())
    preamble = preamble.replace(args.data_dir, _beside_checkout(args.data_dir))  # the docs name no machine's paths
    body = f"{stamp_line}\n\n```\n{preamble}\n```\n\n" + "\n".join(lines[first_table:])
    replace_block(BENCHMARKS, f"bench-{Path(args.model).name}-{args.precision}", body)


def _beside_checkout(path: str) -> str:
    """``path`` relative to the checkout (``../shared/data``), as a reader's machine would spell it."""
    return os.path.relpath(Path(path).resolve(), REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="target", required=True)
    q = sub.add_parser("quickstart", help="the README's main job, its report summary, claims and timing")
    q.add_argument("--data-dir", default=os.environ.get("XLPEFT_DATA_DIR", "../shared/data"))
    q.add_argument("--out", default="runs/quickstart")
    q.add_argument("--reuse", action="store_true", help="finish an existing grid directory instead of refusing it")
    b = sub.add_parser("bench", help="benchmarks/bench_speed.py's tables in docs/benchmarks.md")
    b.add_argument("--model", default="smollm2-135m")
    b.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    b.add_argument("--data-dir", default=os.environ.get("XLPEFT_DATA_DIR", "../shared/data"))
    args, extra = parser.parse_known_args()
    if args.target == "quickstart":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        quickstart(args)
    else:
        bench(args, extra)


if __name__ == "__main__":
    main()
