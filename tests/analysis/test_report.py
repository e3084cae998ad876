"""``xlpeft report`` on a hand-made grid directory: numbers checked by hand, every file written, the CLI.

The grid is the real format (``grid.json`` from the grid code, ``results.parquet`` gathered by the
runner from an evaluation table) with made-up scores, so nothing is trained. Scores follow a formula,
so the expected numbers can be worked out by hand:

    value = BASE[regime] + 0.001 * L * (1 + OFFSET[lang]) + SCALE[regime] * OFFSET[lang] + 0.01 * seed

``ast_Latn`` has no syntactic features in URIEL, so its syntactic distance is missing.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import linregress

from xlpeft.analysis.render import truncation_warnings
from xlpeft.analysis.report import write_report
from xlpeft.analysis.tables import analyse, gain_pairs
from xlpeft.cli import main
from xlpeft.experiments import runner
from xlpeft.experiments.grid import expand

OFFSET = {"eng_Latn": 0.30, "fra_Latn": 0.10, "deu_Latn": 0.05, "swh_Latn": -0.16, "yor_Latn": -0.25,
          "ast_Latn": 0.15, "zho_Hans": -0.09}  # sum 0.10
BASE = {"prompt": 0.60, "joint": 0.50}
SCALE = {"prompt": 1.0, "joint": 0.5}
SIB200 = os.environ.get("XLPEFT_DATA_DIR") or str(Path(__file__).resolve().parents[3] / "shared" / "data" / "sib200")
T_975_1 = 12.706204736174707  # Student's t, 97.5th percentile, 1 degree of freedom (two seeds)
P4, P16, J4, J16 = (f"regime={r}, prompt_length={length}" for r in ("prompt", "joint") for length in (4, 16))


def _grid_dir(path, train: dict, partial: str | None = None):
    """Write a grid output directory; ``partial`` is a language only the first run was evaluated on."""
    grid = expand({"name": "synthetic", "train": {"model": "smollm2-135m", "epochs": 1, **train},
                   "evaluate": {"languages": list(OFFSET), "precision": "fp32"}})
    runner.write_grid(grid, path, SIB200)  # the data directory, recorded as 'xlpeft run' does: the baselines read it
    rows = []
    for i, spec in enumerate(grid.runs):
        c = spec.config
        for lang in [*OFFSET, *([partial] if partial and i == 0 else [])]:
            offset = OFFSET.get(lang, 0.0)
            value = BASE[c.regime] + 0.001 * c.prompt_length * (1 + offset) + SCALE[c.regime] * offset + 0.01 * c.seed
            rows.append({"run": spec.run_id, "run_id": f"{i:012x}", "language": lang, "name": lang, "script": lang[4:],
                         "split": "test", "eval_precision": "fp32", "accuracy": value, "macro_f1": value - 0.05})
    (path / "eval").mkdir()
    pd.DataFrame(rows).to_csv(path / "eval" / "local.csv", index=False)
    runner.gather(grid, path)
    return path


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """2 regimes x 2 prompt lengths x 2 seeds on 7 languages (and hin_Deva in one run only), reported once."""
    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XLPEFT_CACHE_DIR", str(root / "cache"))
        out = _grid_dir(root / "grid", {"regime": ["prompt", "joint"], "prompt_length": [4, 16], "seed": [0, 1]},
                        partial="hin_Deva")
        written = write_report(out)
        yield out, analyse(out), written


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path / "cache"))


def test_configurations_are_the_axes_but_seed_in_grid_order(grid):
    _, report, _ = grid
    configs = report.configs
    assert list(configs["configuration"]) == [P4, P16, J4, J16]
    assert list(configs["seeds"]) == [2, 2, 2, 2] and report.axes == ["regime", "prompt_length"]
    assert list(configs["prompt_length"]) == [4, 16, 4, 16] and set(configs["source"]) == {"eng_Latn"}


def test_summary_is_the_mean_over_seeds_of_each_seeds_mean_over_languages(grid):
    _, report, _ = grid
    row = report.summary.set_index("configuration").loc[P4]
    # per seed: 0.60 + 0.004 * (1 + 0.1/7) + 0.1/7 + 0.01 * seed; the two seeds differ by 0.01
    per_seed = [0.60 + 0.004 * (1 + 0.1 / 7) + 0.1 / 7 + 0.01 * seed for seed in (0, 1)]
    half = T_975_1 * (0.01 / math.sqrt(2)) / math.sqrt(2)  # t * s / sqrt(n), s = 0.01 / sqrt(2)
    assert row["mean"] == pytest.approx(sum(per_seed) / 2)
    assert row["ci_low"] == pytest.approx(row["mean"] - half) and row["ci_high"] == pytest.approx(row["mean"] + half)
    assert row["seeds"] == 2 and row["languages"] == 7
    assert row["best"] == "eng_Latn, ast_Latn, fra_Latn" and row["worst"] == "yor_Latn, swh_Latn, zho_Hans"


def test_only_languages_every_run_has_are_used(grid):
    _, report, _ = grid
    assert report.left_out == ["hin_Deva"] and report.languages == list(OFFSET)
    assert set(report.data["language"]) == set(OFFSET)


def test_gains_pair_configurations_that_differ_in_one_axis(grid):
    _, report, _ = grid
    pairs = gain_pairs(report.configs, report.axes)
    assert sorted(pairs) == sorted([(P4, J4, "regime"), (P16, J16, "regime"),
                                    (P4, P16, "prompt_length"), (J4, J16, "prompt_length")])
    row = report.gains.set_index(["a", "b"]).loc[(P4, J4)]
    # prompt - joint at L=4 per language: 0.10 + 0.5 * OFFSET; only yor_Latn (-0.25) loses
    assert row["mean_gain"] == pytest.approx(0.10 + 0.5 * 0.1 / 7)
    assert (row["wins"], row["ties"], row["losses"], row["n"]) == (6, 0, 1, 7)
    # paired on seed, the 0.01 * seed term cancels: both seeds give the same gain, so the interval over seeds has
    # zero width; two seeds are too few for a p-value (underpowered), languages vary so their interval does not
    assert row["seeds"] == 2 and math.isnan(row["p"])
    assert row["ci_low"] == pytest.approx(row["mean_gain"]) and row["ci_high"] == pytest.approx(row["mean_gain"])
    assert row["lang_low"] < row["mean_gain"] < row["lang_high"]
    # the gain and the scores of prompt at L=4 are both increasing linear functions of OFFSET: same r
    scores = report.correlations.set_index(["configuration", "kind"])
    assert row["pearson_r_syntactic"] == pytest.approx(scores.loc[(P4, "syntactic"), "pearson_r"])
    assert row["n_syntactic"] == 5 and row["n_geographic"] == 6  # targets only: the source is left out


def test_correlations_leave_out_missing_distances(grid):
    _, report, _ = grid
    table = report.correlations.set_index(["configuration", "kind"])
    assert table.loc[(P4, "syntactic"), "n"] == 5 and table.loc[(P4, "syntactic"), "n_dropped"] == 1
    assert table.loc[(P4, "geographic"), "n"] == 6  # the 6 targets; the source eng_Latn is left out
    assert len(table) == 4 * 6
    by_language = report.per_language.set_index("language")
    assert math.isnan(by_language.loc["ast_Latn", "syntactic"]) and by_language.loc["eng_Latn", "syntactic"] == 0
    assert by_language.loc["eng_Latn", P4] == pytest.approx(0.60 + 0.004 * 1.3 + 0.30 + 0.005)


def test_every_file_is_written_and_the_html_stands_alone(grid):
    out, _, written = grid
    names = {path.name for path in written}
    assert names == {"report.md", "report.html", "summary.tex", "summary.csv", "per_language.csv",
                     "correlations.csv", "gains.csv", "findings.csv", "by_distance.png", "scatter.png", "heatmap.png",
                     "prompt_length.png", "world_map.png"}
    assert all(path.parent == out / "report" and path.stat().st_size > 0 for path in written)
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in written if path.suffix == ".png")
    page = (out / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []
    markdown = (out / "report" / "report.md").read_text()
    assert "![scatter](scatter.png)" in markdown and "14.3 %" in markdown and "`ast_Latn`" in markdown
    tex = (out / "report" / "summary.tex").read_text()
    assert "\\toprule" in tex and "eng\\_Latn" in tex and not re.search(r"(?<!\\)_", tex.replace("%", "", 1))
    assert len(pd.read_csv(out / "report" / "gains.csv")) == 4


def test_cli_reports_a_seed_only_grid_and_prints_the_paths(tmp_path, capsys):
    out = _grid_dir(tmp_path / "grid", {"seed": [0, 1]})
    assert main(["report", str(out), "--out", str(tmp_path / "r"), "--metric", "macro_f1",
                 "--distance", "geographic"]) == 0
    printed = capsys.readouterr().out.split()
    assert str(tmp_path / "r" / "report.html") in printed and str(tmp_path / "r" / "summary.tex") in printed
    assert not (tmp_path / "r" / "prompt_length.png").exists()  # prompt_length is no axis here
    summary = pd.read_csv(tmp_path / "r" / "summary.csv")
    assert list(summary["configuration"]) == ["smollm2-135m prompt"]  # one configuration: model and regime
    assert summary["mean"].iloc[0] == pytest.approx(0.60 + 0.01 * (1 + 0.1 / 7) + 0.1 / 7 + 0.005 - 0.05)
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "no gains" in markdown and "not an axis" in markdown


def test_cli_errors_are_one_line_with_the_fix(tmp_path, capsys, grid):
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "xlpeft run CONFIG --out" in error
    assert main(["report", str(grid[0]), "--distance", "lexical"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "syntactic, geographic" in error


def test_truncation_per_language_and_its_warnings(tmp_path):
    """A store that records truncation (``n``, ``n_truncated`` on every row): Chinese loses 20 of 200 inputs
    with 16 prompt vectors and 4 with 4, Yoruba 2 of 200 everywhere; the others none."""
    out = _grid_dir(tmp_path / "grid", {"prompt_length": [4, 16], "seed": [0, 1]})
    store = pd.read_parquet(out / "results.parquet")
    cut = {("zho_Hans", 16): 20, ("zho_Hans", 4): 4, ("yor_Latn", 16): 2, ("yor_Latn", 4): 2}
    store["n"] = 200
    store["n_truncated"] = [cut.get((language, length), 0)
                            for language, length in zip(store["language"], store["cfg_prompt_length"])]
    store.to_parquet(out / "results.parquet", index=False)
    written = write_report(out, tmp_path / "r")
    report = analyse(out)
    share = report.truncation
    assert share.loc["zho_Hans", "prompt_length=16"] == pytest.approx(0.10)  # 2 runs x 20 of 2 x 200
    assert share.loc["zho_Hans", "prompt_length=4"] == pytest.approx(0.02)
    assert share.loc["yor_Latn"].tolist() == pytest.approx([0.01, 0.01]) and share.loc["eng_Latn"].sum() == 0
    assert report.inputs["eng_Latn"] == 200
    warnings = truncation_warnings(share, gain_pairs(report.configs, report.axes))
    assert len(warnings) == 2
    assert warnings[0].startswith("`zho_Hans` loses more than 5% of its inputs: 10.0 % in prompt_length=16")
    assert "cut different shares in 1 language(s), by up to 8.0 pp (`zho_Hans`: 2.0 % vs 10.0 %)" in warnings[1]
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "### Truncation" in markdown and "| zho_Hans | 200 | 2.0 | 10.0 |" in markdown
    assert "**Warnings**:" in markdown and "truncation.csv" in {path.name for path in written}


def test_old_stores_say_truncation_was_not_recorded(grid):
    out, report, _ = grid
    assert report.truncation is None
    markdown = (out / "report" / "report.md").read_text()
    assert "Truncation was not recorded" in markdown
    assert "## Findings: the papers' claims" in markdown and "**underpowered**" in markdown
    assert "Wilcoxon" not in markdown


def test_the_quickstart_shaped_grid_gets_its_claims_worked_out_by_hand(grid):
    _, report, _ = grid
    findings = {(f.claim.split(":")[0], f.comparison): f for f in report.findings}
    assert len(findings) == 4  # regime at L = 4 and 16, prompt length for each regime
    distant = findings[("freezing the model helps distant languages", "regime prompt - joint at prompt_length=4")]
    # prompt - joint per target: 0.10 + 0.5 * OFFSET; ast_Latn has no syntactic distance, eng_Latn is the source
    targets = ["fra_Latn", "deu_Latn", "swh_Latn", "yor_Latn", "zho_Hans"]
    syntactic = report.distances["eng_Latn"]["syntactic"]
    expected = 10 * 0.5 * linregress([syntactic[t] for t in targets], [OFFSET[t] for t in targets]).slope
    assert distant.estimate == pytest.approx(expected) and distant.languages == 5 and distant.seeds == 2
    assert distant.verdict == "underpowered" and math.isnan(distant.p)
    shorter = findings[("shorter prompts transfer better", "prompt_length 4, 16 at regime=prompt")]
    # mean over the 6 targets gains 0.001 * 12 * (1 + mean OFFSET) from L = 4 to 16: two doublings
    assert shorter.estimate == pytest.approx(100 * 0.001 * 12 * (1 + (0.10 - 0.30) / 6) / 2)
    assert shorter.languages == 6 and shorter.direction == -1


def test_the_report_does_not_import_torch():
    """``xlpeft report`` reads a table and draws plots: importing it must not load torch (seconds at start)."""
    code = "import sys, xlpeft.analysis.report; print([m for m in ('torch', 'transformers') if m in sys.modules])"
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert done.stdout.strip() == "[]"
