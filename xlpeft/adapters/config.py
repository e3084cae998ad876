"""The configuration of a sequential bottleneck adapter (AdapterHub's ``seq_bn``, the "Pfeiffer" layout).

Only the knobs method B varies are exposed; everything else is fixed to ``SeqBnConfig``'s values
(adapter after the feed-forward sub-layer only, the block's layer norm re-used before and after the
adapter, residual taken before that layer norm, no new layer norms, no gating, scaling 1, no
invertible adapter). ``adapterhub.py`` refuses AdapterHub configs that differ in any of those.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from transformers.activations import ACT2FN

from xlpeft.errors import XlpeftError

InitWeights = Literal["bert", "mam_adapter", "houlsby"]
INIT_WEIGHTS = ("bert", "mam_adapter", "houlsby")
IDENTITY_INIT = frozenset({"gemma3_text"})  # model types whose adapters start as the identity (AdapterConfig.for_model)
# AdapterHub resolves names through transformers' ACT2FN, plus its own "leakyrelu"
NON_LINEARITIES = (*sorted(ACT2FN), "leakyrelu")


@dataclass(frozen=True)
class AdapterConfig:
    """A ``seq_bn`` bottleneck adapter: d -> d // reduction_factor -> non-linearity -> d, plus a residual.

    ``layers`` selects blocks by AdapterHub's layer index (encoder-decoders: encoder blocks 0..n-1, then
    decoder blocks n..n+m-1); None means every block. ``init_weights`` follows AdapterHub: ``bert``
    (normal(0, 0.02) weights, zero biases; the default), ``mam_adapter`` (Kaiming-uniform down-projection,
    zero up-projection, so the adapter starts as the identity) or ``houlsby`` (truncated normal(0, 0.01)).
    ``dropout`` applies to the up-projection's output during training, as in AdapterHub (default 0).
    """

    reduction_factor: float = 16
    non_linearity: str = "relu"
    layers: tuple[int, ...] | None = None
    init_weights: InitWeights = "bert"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.reduction_factor > 0:
            raise XlpeftError(f"adapter reduction_factor must be > 0, got {self.reduction_factor!r}")
        if self.non_linearity.lower() not in NON_LINEARITIES:
            raise XlpeftError(f"unknown adapter non_linearity {self.non_linearity!r}; "
                              f"choose one of {', '.join(NON_LINEARITIES)}")
        if self.init_weights not in INIT_WEIGHTS:
            raise XlpeftError(f"unknown adapter init_weights {self.init_weights!r}; choose one of {INIT_WEIGHTS}")
        if not 0.0 <= self.dropout < 1.0:
            raise XlpeftError(f"adapter dropout must be in [0, 1), got {self.dropout!r}")
        if self.layers is not None:
            layers = tuple(sorted(set(int(i) for i in self.layers)))
            if any(i < 0 for i in layers):
                raise XlpeftError(f"adapter layers must be non-negative block indices, got {list(self.layers)}")
            object.__setattr__(self, "layers", layers)  # a list from YAML becomes a hashable tuple

    @classmethod
    def for_model(cls, model_type: str, reduction_factor: float) -> AdapterConfig:
        """The adapter xlpeft adds to a ``model_type`` model: AdapterHub's default ``bert`` init, except on
        families whose residual stream that init breaks before any training (``IDENTITY_INIT``), which start
        as the identity (``mam_adapter``). Measured 2026-12-03, untrained d/16 adapters in every block, LM loss
        on two English sentences: Gemma-3-270M 2.78 without adapters, 21.4 with ``bert``, 5.63 with ``houlsby``,
        2.78 with ``mam_adapter`` (its hidden states reach norms in the thousands); SmolLM2-135M 3.64, 3.84,
        3.72, 3.64. Language and task adapters both come from here, so module.json records what was used."""
        init: InitWeights = "mam_adapter" if model_type in IDENTITY_INIT else "bert"
        return cls(reduction_factor=reduction_factor, init_weights=init)

    def bottleneck_size(self, hidden_size: int) -> int:
        """AdapterHub's ``int(hidden_size // reduction_factor)``, at least 1 (768 // 16 = 48)."""
        return max(1, int(hidden_size // self.reduction_factor))

    def parameter_count(self, hidden_size: int) -> int:
        """Parameters of one adapted sub-layer: 2 * d * b weights + b + d biases."""
        b = self.bottleneck_size(hidden_size)
        return 2 * hidden_size * b + b + hidden_size

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = None if self.layers is None else list(self.layers)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdapterConfig:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise XlpeftError(f"unknown adapter config keys {sorted(unknown)}; "
                              f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)
