"""SIB-200 topic classification: read one language's split from a directory or the hub.

Source resolution (first that applies): an explicit ``data_dir``, the ``XLPEFT_DATA_DIR`` environment
variable, else the hub dataset ``Davlan/sib200``. A directory may be the ``sib200`` folder itself
(``<dir>/<code>/{train,dev,test}.tsv``) or its parent (``<dir>/sib200/<code>/...``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from xlpeft.data.languages import registry
from xlpeft.errors import XlpeftError
from xlpeft.hub import hub_reachable, offline_mode

HUB_DATASET = "Davlan/sib200"
# The label order of SIB-200's labels.txt; fixed so label ids mean the same thing in every run.
LABELS: tuple[str, ...] = (
    "science/technology",
    "travel",
    "politics",
    "sports",
    "health",
    "entertainment",
    "geography",
)
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Split:
    """One language's split: parallel lists, ``index_id`` being SIB-200's sentence id."""

    language: str
    name: str
    index_ids: list[int]
    texts: list[str]
    labels: list[int]  # indices into LABELS

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Sib200:
    """Where SIB-200 comes from; ``root`` is None when it is read from the hub."""

    root: Path | None

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike | None = None) -> "Sib200":
        """Pick the source as the module docstring describes; a bad directory is an error, not a fallback."""
        given = data_dir or os.environ.get("XLPEFT_DATA_DIR")
        if not given:
            return cls(None)
        path = Path(given).expanduser()
        for candidate in (path, path / "sib200"):
            if (candidate / "eng_Latn" / "train.tsv").is_file():
                return cls(candidate.resolve())
        origin = "--data-dir" if data_dir else "XLPEFT_DATA_DIR"
        raise XlpeftError(
            f"SIB-200 data not found in {path} (from {origin}): expected {path}/<code>/train.tsv such as "
            f"eng_Latn/train.tsv; point {origin} at the sib200 folder, or unset it to load {HUB_DATASET} from the hub"
        )

    def describe(self) -> str:
        return str(self.root) if self.root else f"hub:{HUB_DATASET}"

    def load(self, language: str, split: str) -> Split:
        """Read ``split`` of ``language``, checking the code and the labels."""
        if language not in registry():
            raise XlpeftError(f"unknown SIB-200 language {language!r}: run 'xlpeft languages' for valid codes")
        if split not in SPLITS:
            raise XlpeftError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        frame = self._read_dir(language, split) if self.root else _read_hub(language, split)
        return _to_split(frame, language, split, self.describe())

    def _read_dir(self, language: str, split: str) -> pd.DataFrame:
        path = self.root / language / f"{split}.tsv"
        if not path.is_file():
            raise XlpeftError(f"missing file {path}: the data directory lacks {language}; re-copy SIB-200 there")
        # Default quoting matters: pandas wrote these files with minimal quoting (rows starting with '"').
        return pd.read_csv(path, sep="\t", dtype={"text": str, "category": str})


def _read_hub(language: str, split: str) -> pd.DataFrame:
    import datasets  # imported lazily: only hub users pay for it

    # Without this check, datasets retries for minutes on a machine with no network. In offline mode
    # datasets may still answer from its local cache, so it is allowed to try.
    if not offline_mode() and not hub_reachable():
        raise XlpeftError(
            f"no SIB-200 data directory given and the hub ({HUB_DATASET}) is unreachable; "
            "pass --data-dir (or set XLPEFT_DATA_DIR) to a local SIB-200 copy"
        )
    hub_split = {"dev": "validation"}.get(split, split)
    try:
        ds = datasets.load_dataset(HUB_DATASET, language, split=hub_split)
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        raise XlpeftError(
            f"could not load {HUB_DATASET} ({language}/{split}) from the hub ({type(exc).__name__}); "
            "pass --data-dir (or set XLPEFT_DATA_DIR) to a local SIB-200 copy"
        ) from exc
    return ds.to_pandas()


def _to_split(frame: pd.DataFrame, language: str, split: str, source: str) -> Split:
    missing = {"index_id", "category", "text"} - set(frame.columns)
    if missing:
        raise XlpeftError(f"malformed SIB-200 file for {language}/{split} in {source}: missing columns {sorted(missing)}")
    unknown = sorted(set(frame["category"]) - set(LABELS))
    if unknown or frame["text"].isna().any():
        problem = f"unknown categories {unknown}" if unknown else "empty text cells"
        raise XlpeftError(f"malformed SIB-200 file for {language}/{split} in {source}: {problem}; re-copy the data")
    label_id = {label: i for i, label in enumerate(LABELS)}
    return Split(
        language=language,
        name=split,
        index_ids=[int(i) for i in frame["index_id"]],
        texts=list(frame["text"]),
        labels=[label_id[c] for c in frame["category"]],
    )
