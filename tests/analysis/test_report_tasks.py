"""``xlpeft report`` on grids of other tasks than SIB-200: a NusaX grid (classification, ISO 639-3 codes,
macro-F1) and a MasakhaNER grid (text-to-text, entity F1), built as test_report.py builds its SIB-200 grid
(the grid code's grid.json, the runner's results.parquet, made-up scores), with real language codes.

The references are independent of the report's code: baselines from pandas reading the data files and an
exact double sum over the binomial counts of true and false positives; URIEL distances from the
SIB-200-code API of ``xlpeft.data.distances`` (FLORES codes, and ISO 639-3 codes outside SIB-200);
correlations from scipy.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, pearsonr
from test_plots import assert_legends_placed, closed_figures  # noqa: F401  (a fixture)

from xlpeft.analysis import facts, plots
from xlpeft.analysis.report import write_report
from xlpeft.analysis.tables import analyse, source_distances
from xlpeft.cli import main
from xlpeft.data.distances import ALL_KINDS, distances
from xlpeft.data.tasks import masakhaner, nusax
from xlpeft.errors import XlpeftError
from xlpeft.experiments import runner
from xlpeft.experiments.grid import expand
from xlpeft.tasks import get_task



def _data_root() -> Path:
    """The data root holding sib200/ and tasks/: XLPEFT_DATA_DIR names it or its sib200 folder (conftest.py)."""
    given = os.environ.get("XLPEFT_DATA_DIR")
    path = Path(given) if given else Path(__file__).resolve().parents[3] / "shared" / "data"
    return path.parent if (path / "eng_Latn").is_dir() else path


DATA = _data_root()
NUSAX = {"eng": 0.30, "ind": 0.20, "jav": 0.05, "sun": 0.00, "bbc": -0.10, "nij": -0.20, "mad": -0.15, "ace": -0.05}
NER = {"eng": 0.40, "hau": 0.10, "yor": 0.00, "swa": 0.05, "pcm": 0.25, "bbj": -0.20, "wol": -0.15}

pytestmark = pytest.mark.skipif(not (DATA / "tasks" / "nusax").is_dir(), reason=f"no task data under {DATA}")


def _grid_dir(path: Path, task: str, offsets: dict[str, float], metrics: dict[str, float], train: dict) -> Path:
    """A grid output directory of ``task`` on the languages of ``offsets``: metric ``m`` of a run scores
    ``0.5 + offsets[language] + 0.01 * seed + metrics[m]`` (``0.1`` less with regime joint)."""
    grid = expand({"name": f"{task}-grid", "train": {"task": task, "model": "smollm2-135m", "epochs": 1, **train},
                   "evaluate": {"languages": list(offsets), "precision": "fp32"}})
    runner.write_grid(grid, path)
    rows = []
    for i, spec in enumerate(grid.runs):
        base = 0.5 + 0.01 * spec.config.seed - (0.1 if spec.config.regime == "joint" else 0.0)
        rows += [{"run": spec.run_id, "run_id": f"{i:012x}", "language": language, "name": "", "script": "",
                  "split": "test", "eval_precision": "fp32",
                  **{metric: base + offset + shift for metric, shift in metrics.items()}}
                 for language, offset in offsets.items()]
    (path / "eval").mkdir()
    pd.DataFrame(rows).to_csv(path / "eval" / "local.csv", index=False)
    runner.gather(grid, path)
    return path


@pytest.fixture(scope="module")
def nusax_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("nusax")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XLPEFT_CACHE_DIR", str(root / "cache"))
        out = _grid_dir(root / "grid", "nusax", NUSAX, {"macro_f1": 0.0, "accuracy": 0.05},
                        {"regime": ["prompt", "joint"], "seed": [0, 1, 2]})
        written = write_report(out, data_dir=DATA)
        yield out, analyse(out, data_dir=DATA), written


@pytest.fixture(scope="module")
def ner_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("ner")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XLPEFT_CACHE_DIR", str(root / "cache"))
        out = _grid_dir(root / "grid", "masakhaner", NER, {"f1": 0.0, "precision": 0.02, "recall": -0.02},
                        {"seed": [0, 1, 2]})
        write_report(out, data_dir=DATA)
        yield out, analyse(out, data_dir=DATA)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XLPEFT_CACHE_DIR", str(tmp_path / "cache"))


def exact_chance_macro_f1(counts: list[int], labels: int) -> float:
    """E[macro-F1] of uniform guessing by the definition: TP ~ Bin(n_c, 1/C) and FP ~ Bin(n - n_c, 1/C),
    independent; F1_c = 2 TP / (2 TP + FP + FN), summed over every (TP, FP)."""
    n, total = sum(counts), 0.0
    for n_c in counts:
        tp, fp = np.arange(n_c + 1)[:, None], np.arange(n - n_c + 1)[None, :]
        weight = binom.pmf(tp, n_c, 1 / labels) * binom.pmf(fp, n - n_c, 1 / labels)
        total += float((weight * np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + (n_c - tp), 1), 0.0)).sum())
    return total / labels


def nusax_counts(language: str) -> list[int]:
    frame = pd.read_csv(DATA / "tasks" / "nusax" / "datasets" / "sentiment" / nusax.FOLDERS[language] / "test.csv")
    return [int((frame["label"] == label).sum()) for label in ("negative", "neutral", "positive")]


def test_a_nusax_report_uses_macro_f1_and_names_the_task(nusax_grid):
    out, report, written = nusax_grid
    assert report.metric == "macro_f1" and report.metric_name == "macro-F1" and report.task == "NusaX"
    row = report.summary.set_index("configuration").loc["regime=prompt"]
    targets = np.mean(list(NUSAX.values()))
    assert row["mean"] == pytest.approx(0.5 + targets + 0.01)  # macro-F1 rows (accuracy is 0.05 higher)
    markdown = (out / "report" / "report.md").read_text()
    assert markdown.startswith("# nusax-grid: cross-lingual macro-F1 on NusaX")
    assert "NusaX `test` split" in markdown and "NusaX has 3 labels" in markdown and "SIB-200" not in markdown.split(
        "## Findings")[0]
    assert "tested on NusaX's macro-F1" in markdown
    assert "macro-F1 (\\%)" in (out / "report" / "summary.tex").read_text()
    assert {path.name for path in written} >= {"report.html", "by_distance.png", "world_map.png"}


def test_nusax_baselines_are_computed_from_its_test_files(nusax_grid):
    _, report, _ = nusax_grid
    table = report.baselines.table
    for language in ("bbc", "ind"):
        counts = nusax_counts(language)
        share = max(counts) / sum(counts)
        assert table.loc[language, "majority"] == pytest.approx((2 * share / (1 + share)) / 3)
        assert table.loc[language, "chance"] == pytest.approx(exact_chance_macro_f1(counts, 3), abs=1e-12)
    per_language = report.per_language.set_index("language")
    assert per_language.loc["bbc", "majority"] == table.loc["bbc", "majority"]
    accuracy = analyse(nusax_grid[0], "accuracy", data_dir=DATA).baselines.table
    counts = nusax_counts("bbc")
    assert accuracy.loc["bbc", "majority"] == pytest.approx(max(counts) / sum(counts))
    assert accuracy.loc["bbc", "chance"] == pytest.approx(1 / 3)


def test_nusax_languages_get_names_and_uriel_distances_through_iso_codes(nusax_grid):
    _, report, _ = nusax_grid
    names = report.per_language.set_index("language")["name"]
    assert names["bbc"] == "Batak Toba"  # ISO 639-3's reference name (no SIB-200 entry): pycountry
    assert names["ind"] == "Indonesian" and names["nij"] == "Ngaju" and names["mad"] == "Madurese"
    reference = distances(["eng_Latn"], [nusax.FLORES.get(code, code) for code in NUSAX]).set_index("target")
    for code in NUSAX:
        for kind in ALL_KINDS:
            ours, theirs = report.distances["eng"].loc[code, kind], reference.loc[nusax.FLORES.get(code, code), kind]
            assert (math.isnan(ours) and math.isnan(theirs)) or ours == theirs, (code, kind)
    assert not math.isnan(report.distances["eng"].loc["bbc", "syntactic"])  # no FLORES code, found by ISO 639-3
    assert facts.language_names(get_task("americasnli"), ["nah"]) == {"nah": "Nahuatl languages"}  # ISO 639-5


def test_iso_639_1_codes_find_uriel_as_their_flores_codes_do():
    """XQuAD's (and XNLI's) ISO 639-1 codes: the distances of their FLORES namesakes."""
    ours = source_distances(get_task("xquad"), ["en"], ["de", "zh", "hi"])["en"]
    reference = distances(["eng_Latn"], ["deu_Latn", "zho_Hans", "hin_Deva"]).set_index("target")
    for code, flores in (("de", "deu_Latn"), ("zh", "zho_Hans"), ("hi", "hin_Deva")):
        assert ours.loc[code, list(ALL_KINDS)].tolist() == pytest.approx(reference.loc[flores, list(ALL_KINDS)].tolist(),
                                                                         nan_ok=True)


def test_nusax_correlations_are_scipys_over_the_targets(nusax_grid):
    _, report, _ = nusax_grid
    row = report.correlations.set_index(["configuration", "kind"]).loc[("regime=prompt", "geographic")]
    targets = [code for code in NUSAX if code != "eng"]
    distance = report.distances["eng"]["geographic"].reindex(targets)
    expected = pearsonr([0.5 + NUSAX[code] + 0.01 for code in targets], distance)
    assert row["n"] == len(targets) and row["pearson_r"] == pytest.approx(expected.statistic)


def test_a_source_set_takes_the_nearest_source_and_leaves_every_source_out(tmp_path):
    out = _grid_dir(tmp_path / "grid", "nusax", NUSAX, {"macro_f1": 0.0, "accuracy": 0.05}, {"seed": [0, 1]})
    store = pd.read_parquet(out / "results.parquet").assign(cfg_source="eng,ind")
    store.to_parquet(out / "results.parquet", index=False)
    report = analyse(out, data_dir=DATA)
    singles = distances(["eng_Latn", "ind_Latn"], ["jav_Latn", "bbc"]).set_index(["source", "target"])
    for code, reference in (("jav", "jav_Latn"), ("bbc", "bbc")):
        expected = min(singles.loc[("eng_Latn", reference), "genetic"], singles.loc[("ind_Latn", reference), "genetic"])
        assert report.distances["eng,ind"].loc[code, "genetic"] == expected
    assert (report.correlations.loc[report.correlations["kind"] == "genetic", "n"] == len(NUSAX) - 2).all()
    write_report(out, data_dir=DATA)
    assert "the nearest of `eng`, `ind`" in (out / "report" / "report.md").read_text()


def test_without_data_the_report_is_written_and_says_the_baselines_were_not_computed(tmp_path, monkeypatch):
    out = _grid_dir(tmp_path / "grid", "nusax", NUSAX, {"macro_f1": 0.0, "accuracy": 0.05}, {"seed": [0, 1]})
    monkeypatch.delenv("XLPEFT_DATA_DIR", raising=False)
    (tmp_path / "empty").mkdir()
    assert main(["report", str(out), "--data-dir", str(tmp_path / "empty")]) == 0
    markdown = (out / "report" / "report.md").read_text()
    assert "baselines were not computed: the NusaX data could not be read (nusax data not found under" in markdown
    assert "majority" not in pd.read_csv(out / "report" / "per_language.csv").columns
    grid = json.loads((out / "grid.json").read_text())
    assert grid["data_dir"] is None  # the grid had none, and 'xlpeft run' was given none
    (out / "grid.json").write_text(json.dumps({**grid, "data_dir": str(DATA)}))  # as 'xlpeft run --data-dir' records it
    assert analyse(out).baselines.table is not None


def test_xlpeft_run_records_its_data_directory_absolute(tmp_path, monkeypatch):
    grid = expand({"train": {"task": "nusax", "model": "smollm2-135m"}, "data_dir": "from/the/yaml"})
    monkeypatch.chdir(tmp_path)
    runner.write_grid(grid, tmp_path / "a")
    runner.write_grid(grid, tmp_path / "b", "given")
    assert json.loads((tmp_path / "a" / "grid.json").read_text())["data_dir"] == str(tmp_path / "from" / "the" / "yaml")
    assert json.loads((tmp_path / "b" / "grid.json").read_text())["data_dir"] == str(tmp_path / "given")


def test_a_masakhaner_report_uses_entity_f1_and_has_no_baselines(ner_grid):
    out, report = ner_grid
    assert report.metric == "f1" and report.metric_name == "entity F1" and report.task == "MasakhaNER"
    assert report.baselines.table is None and report.labels == 0
    markdown = (out / "report" / "report.md").read_text()
    assert markdown.startswith("# masakhaner-grid: cross-lingual entity F1 on MasakhaNER")
    assert "no majority class or chance level" in markdown and "MasakhaNER `test` split" in markdown
    names = report.per_language.set_index("language")["name"]
    assert names["pcm"] == "Nigerian Pidgin" and names["bbj"] == "Ghomálá'" and names["swa"].startswith("Swahili")
    reference = distances(["eng_Latn"], ["swh_Latn", "bbj"]).set_index("target")
    assert report.distances["eng"].loc["swa", "syntactic"] == reference.loc["swh_Latn", "syntactic"]
    assert report.distances["eng"].loc["bbj", "syntactic"] == reference.loc["bbj", "syntactic"]
    correlation = report.correlations.set_index("kind").loc["genetic"]
    assert correlation["n"] == len(NER) - 1 and np.isfinite(correlation["pearson_r"])
    with pytest.raises(XlpeftError, match="choose --metric from f1, precision, recall"):
        analyse(out, "accuracy", data_dir=DATA)


def test_task_baselines_against_the_files():
    """SIB-200's 25 % majority and 1/7 chance, and NusaX's, derived from the files by pandas."""
    frame = pd.read_csv(DATA / "sib200" / "eng_Latn" / "test.tsv", sep="\t")
    share = frame["category"].value_counts().max() / len(frame)
    lines = get_task("sib200", DATA).baselines("eng_Latn", "test")
    assert share == 0.25 and lines["majority"]["accuracy"] == share
    assert lines["majority"]["macro_f1"] == pytest.approx(0.4 / 7) and lines["chance"]["accuracy"] == 1 / 7
    counts = frame["category"].value_counts().tolist()
    assert lines["chance"]["macro_f1"] == pytest.approx(exact_chance_macro_f1(counts, 7), abs=1e-12)
    counts = nusax_counts("bbc")
    lines = get_task("nusax", DATA).baselines("bbc", "test")
    assert lines["majority"] == pytest.approx({"macro_f1": 2 * max(counts) / (sum(counts) + max(counts)) / 3,
                                               "accuracy": max(counts) / sum(counts)})
    assert lines["chance"]["accuracy"] == 1 / 3
    assert get_task("masakhaner", DATA).baselines("hau", "test") == {}
    assert masakhaner.SOURCE == "eng"


def test_the_evaluation_plot_draws_a_tasks_own_baselines(tmp_path, closed_figures):  # noqa: F811
    """NusaX's macro-F1 majority and chance lines, at the values of its files, with language names under codes."""
    task = get_task("nusax", DATA)
    languages = ["bbc", "ind", "jav"]
    lines = facts.baselines(task, languages, "test", "macro_f1")
    results = pd.DataFrame([{"run": "spt", "language": code, "script": "", "macro_f1": 0.5 + NUSAX[code]}
                            for code in languages])
    plots.accuracy_plot(results, ["spt"], tmp_path / "plot.png", "macro_f1", lines.table,
                        facts.language_names(task, languages))
    [figure] = closed_figures
    ax = figure.axes[0]
    drawn = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    counts = nusax_counts("bbc")
    share = max(counts) / sum(counts)
    majority = next(value for label, value in drawn.items() if label.startswith("majority class"))
    chance = next(value for label, value in drawn.items() if label.startswith("chance"))
    assert majority == pytest.approx((2 * share / (1 + share)) / 3)  # NusaX is parallel: one value for all
    assert chance == pytest.approx(exact_chance_macro_f1(counts, 3), abs=1e-12)
    assert [tick.get_text() for tick in ax.get_xticklabels()][0] == "ind Indonesian"
    assert "bbc Batak Toba" in [tick.get_text() for tick in ax.get_xticklabels()]
    assert_legends_placed(figure)


def test_xlpeft_evaluate_plots_a_nusax_runs_baselines(tmp_path, tiny_model_dir, closed_figures):  # noqa: F811
    """The CLI end to end: a tiny NusaX run evaluated on two languages, its plot's lines at the files' values."""
    run = tmp_path / "run"
    assert main(["train", "--task", "nusax", "--model", str(tiny_model_dir), "--shots", "2", "--epochs", "1",
                 "--prompt-length", "2", "--max-length", "48", "--out", str(run), "--quiet", "--data-dir", str(DATA)]) == 0
    closed_figures.clear()  # training draws nothing, but keep only the evaluation's figure
    assert main(["evaluate", str(run), "--languages", "bbc,ind", "--out", str(tmp_path / "res.csv"), "--quiet",
                 "--data-dir", str(DATA)]) == 0
    [figure] = closed_figures
    ax = figure.axes[0]
    drawn = {line.get_label().split(" (")[0]: line.get_ydata()[0] for line in ax.get_lines()}
    counts = nusax_counts("bbc")
    assert drawn["majority class"] == pytest.approx(2 * max(counts) / (sum(counts) + max(counts)) / 3)
    assert drawn["chance"] == pytest.approx(exact_chance_macro_f1(counts, 3), abs=1e-12)
    assert {tick.get_text() for tick in ax.get_xticklabels()} == {"bbc Batak Toba", "ind Indonesian"}
    assert ax.get_ylabel() == "macro_f1"
