"""Named ``seq_bn`` adapters inside a frozen transformers model: add, stack, train, swap, save.

The base model's weights are never copied or changed. Per block, the adapters live in an
``nn.ModuleDict`` attached where AdapterHub keeps them, so ``model.to()``, ``model.train()`` and
optimisers see them, and their state-dict keys *are* AdapterHub's (``adapterhub.py`` only does the
files); forward hooks apply the active ones:

- bert, xlm-roberta (post-LN): hook on ``encoder.layer.i.output`` (dense, dropout, LayerNorm(h + x)),
  h captured at its ``dropout``; adapters in ``encoder.layer.i.output.adapters.<name>``.
- t5, mt5 (pre-LN): hook on ``{encoder,decoder}.block.i.layer[-1]`` (T5LayerFF: x + FFN(LN(x))), in every
  encoder and decoder block; adapters in ``...block.i.layer.<1 or 2>.adapters.<name>``.
- xglm, llama, gemma3_text (pre-LN): hook on the block ``layers.i`` (its MLP and residual add are its last
  step; Gemma 3 normalises the MLP's output before that add, inside the sub-layer, so the adapter still
  follows the whole feed-forward sub-layer); adapters in ``layers.i.output_adapters.adapters.<name>``.
- bloom (pre-LN): hook on ``h.i.mlp`` (BloomMLP returns residual + MLP(.)); adapters in
  ``h.i.output_adapters.adapters.<name>``.

(paths relative to the base model; the rules are in ``layer.py``). T5 and Llama match AdapterHub's own
implementations; XGLM, BLOOM and Gemma 3, which AdapterHub lacks, follow its Llama layout.

The active adapters form a stack (``set_active``): in each block the first one's output feeds the
second, each with its own residual (MAD-X's ``Stack(lang, task)``). A block where an active adapter
was not added (``layers``) skips it, as AdapterHub does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle
from transformers import PreTrainedModel

from xlpeft.adapters.config import AdapterConfig
from xlpeft.adapters.layer import BottleneckAdapter, seq_bn_post_ln, seq_bn_pre_ln
from xlpeft.errors import XlpeftError

STATE_ATTR = "_xlpeft_adapters"


@dataclass(frozen=True)
class Layout:
    """Where one model family's adapters go, relative to the base model and to each block."""

    blocks: tuple[str, ...]  # the ModuleLists of blocks, in AdapterHub's layer-index order
    target: Callable[[nn.Module], nn.Module]  # the module whose output the adapters follow
    owner: Callable[[nn.Module], nn.Module]  # the module that holds the adapters
    slot: str  # the attribute of ``owner`` that holds them: a ModuleDict, or a module with one
    post_ln: bool  # True: BERT-style sub-layer LayerNorm(h + x), the adapters need h and x apart


def _itself(module: nn.Module) -> nn.Module:
    return module


def _bert_output(block: nn.Module) -> nn.Module:
    return block.output


def _t5_ff(block: nn.Module) -> nn.Module:
    return block.layer[-1]


def _bloom_mlp(block: nn.Module) -> nn.Module:
    return block.mlp


_BERT = Layout(("encoder.layer",), _bert_output, _bert_output, "adapters", post_ln=True)
_T5 = Layout(("encoder.block", "decoder.block"), _t5_ff, _t5_ff, "adapters", post_ln=False)
_DECODER = Layout(("layers",), _itself, _itself, "output_adapters", post_ln=False)
LAYOUTS: dict[str, Layout] = {
    "bert": _BERT,
    "xlm-roberta": _BERT,
    "t5": _T5,
    "mt5": _T5,
    "xglm": _DECODER,
    "llama": _DECODER,
    "gemma3_text": _DECODER,
    "bloom": Layout(("h",), _bloom_mlp, _itself, "output_adapters", post_ln=False),
}


class AdapterSlot(nn.Module):
    """AdapterHub's ``output_adapters`` holder of decoder-only blocks: just the ``adapters`` dict."""

    def __init__(self) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict()


@dataclass
class Site:
    """One adapted sub-layer: its AdapterHub layer index, its adapters, their state-dict key prefix."""

    index: int
    adapters: nn.ModuleDict
    prefix: str  # "bert.encoder.layer.0.output.adapters."
    ffn_out: torch.Tensor | None = None  # post-LN only: h, captured during the current forward


@dataclass
class AdapterState:
    """What ``add_adapter`` attached to a model; kept on the model, removed with the last adapter."""

    sites: list[Site]
    hidden_size: int
    configs: dict[str, AdapterConfig] = field(default_factory=dict)
    active: list[str] = field(default_factory=list)
    handles: list[RemovableHandle] = field(default_factory=list)
    slots: list[tuple[nn.Module, str]] = field(default_factory=list)

    def stack_at(self, site: Site) -> list[BottleneckAdapter]:
        return [site.adapters[name] for name in self.active if name in site.adapters]


def layout_of(model: PreTrainedModel) -> Layout:
    """The family's layout; a clear error for architectures without one."""
    model_type = model.config.model_type
    if model_type not in LAYOUTS:
        raise XlpeftError(f"bottleneck adapters are not implemented for model type {model_type!r}; "
                          f"supported: {', '.join(LAYOUTS)}")
    return LAYOUTS[model_type]


def n_blocks(model: PreTrainedModel) -> int:
    """The number of blocks adapters can go into (encoder-decoders: encoder plus decoder blocks)."""
    return sum(1 for _ in _blocks(model.base_model, layout_of(model)))


def add_adapter(model: PreTrainedModel, name: str, config: AdapterConfig | None = None) -> None:
    """Add a new adapter ``name`` (inactive; see ``set_active``) to the blocks ``config.layers`` selects."""
    config = config or AdapterConfig()
    if not name or "." in name:
        raise XlpeftError(f"invalid adapter name {name!r}: give a non-empty name without dots")
    if name in adapter_names(model):
        raise XlpeftError(f"the model already has an adapter {name!r}; remove it first or pick another name")
    _check_layers(config, n_blocks(model))  # before anything is attached (also refuses unsupported models)
    state = _state(model) or _install(model)
    param = next(model.parameters())
    for site in state.sites:
        if config.layers is not None and site.index not in config.layers:
            continue
        site.adapters[name] = BottleneckAdapter(state.hidden_size, config).to(param.device, param.dtype)
        site.adapters[name].train(model.training)
    state.configs[name] = config


def set_active(model: PreTrainedModel, names: Sequence[str]) -> None:
    """Activate adapters in stacking order (first = closest to the block, e.g. [lang, task]); [] = none."""
    state = _require_state(model)
    missing = [n for n in names if n not in state.configs]
    if missing:
        raise XlpeftError(f"no adapter named {missing}; the model has {sorted(state.configs)}")
    if len(set(names)) != len(names):
        raise XlpeftError(f"adapter stack {list(names)} names an adapter twice")
    state.active[:] = list(names)


def active_adapters(model: PreTrainedModel) -> list[str]:
    state = _state(model)
    return [] if state is None else list(state.active)


def adapter_names(model: PreTrainedModel) -> list[str]:
    state = _state(model)
    return [] if state is None else list(state.configs)


def adapter_config(model: PreTrainedModel, name: str) -> AdapterConfig:
    return _require_state(model, name).configs[name]


def adapter_modules(model: PreTrainedModel, name: str) -> list[tuple[Site, BottleneckAdapter]]:
    """The adapter's module in each block where it was added, in layer-index order."""
    state = _require_state(model, name)
    return [(site, site.adapters[name]) for site in state.sites if name in site.adapters]


def adapter_parameters(model: PreTrainedModel, name: str) -> list[nn.Parameter]:
    return [p for _, module in adapter_modules(model, name) for p in module.parameters()]


def train_only(model: PreTrainedModel, name: str) -> list[nn.Parameter]:
    """Freeze every parameter of the model except adapter ``name``'s; returns those, for the optimiser.

    Activation is separate: the adapter must also be in ``set_active``'s stack to receive gradients.
    """
    trainable = adapter_parameters(model, name)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    return trainable


def adapter_state_dict(model: PreTrainedModel, name: str) -> dict[str, torch.Tensor]:
    """The adapter's weights under AdapterHub's keys (``<prefix>.adapters.<name>.adapter_down.0.weight`` ...)."""
    return {f"{site.prefix}{name}.{key}": value.detach().clone()
            for site, module in adapter_modules(model, name) for key, value in module.state_dict().items()}


def load_adapter_state_dict(model: PreTrainedModel, name: str, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy weights saved by ``adapter_state_dict`` (or AdapterHub, same name) into adapter ``name``.

    Keys may lack the base-model prefix ("bert.", "transformer.", ...), as in AdapterHub saves of a bare
    model. Every key must match, with its shape: a mismatch means another model or adapter layout.
    """
    prefix = model.base_model_prefix + "."
    given = {k if k.startswith(prefix) else prefix + k: v for k, v in state_dict.items()}
    targets = {f"{site.prefix}{name}.{key}": tensor for site, module in adapter_modules(model, name)
               for key, tensor in module.state_dict(keep_vars=True).items()}
    missing, unexpected = sorted(set(targets) - set(given)), sorted(set(given) - set(targets))
    problems = [f"{len(keys)} {kind} (e.g. {keys[0]})" for kind, keys in (("missing", missing),
                                                                          ("unexpected", unexpected)) if keys]
    if problems:
        raise XlpeftError(f"adapter weights do not fit adapter {name!r}: {', '.join(problems)}; "
                          "check the model, the adapter name and its layers")
    with torch.no_grad():
        for key, tensor in targets.items():
            if tensor.shape != given[key].shape:
                raise XlpeftError(f"adapter weight {key} has shape {tuple(given[key].shape)}, the model's "
                                  f"{tuple(tensor.shape)}: another hidden size or reduction factor")
            tensor.copy_(given[key])


def remove_adapter(model: PreTrainedModel, name: str) -> None:
    """Delete adapter ``name``; with the last one go the hooks and holders, leaving the model as loaded."""
    state = _require_state(model, name)
    for site in state.sites:
        if name in site.adapters:
            del site.adapters[name]
    del state.configs[name]
    if name in state.active:
        state.active.remove(name)
    if not state.configs:
        _uninstall(model, state)


def _state(model: PreTrainedModel) -> AdapterState | None:
    return getattr(model, STATE_ATTR, None)


def _require_state(model: PreTrainedModel, name: str | None = None) -> AdapterState:
    state = _state(model)
    if state is None or (name is not None and name not in state.configs):
        known = [] if state is None else sorted(state.configs)
        raise XlpeftError(f"the model has no adapter {name!r}; it has {known}: add one with add_adapter"
                          if name else "the model has no adapters: add one with add_adapter")
    return state


def _check_layers(config: AdapterConfig, count: int) -> None:
    out_of_range = [i for i in config.layers or () if i >= count]
    if out_of_range:
        raise XlpeftError(f"adapter layers {out_of_range} do not exist: the model has blocks "
                          f"0..{count - 1} (encoder-decoders: encoder blocks first)")


def _blocks(base: nn.Module, layout: Layout) -> Iterable[nn.Module]:
    for path in layout.blocks:
        yield from base.get_submodule(path)


def _install(model: PreTrainedModel) -> AdapterState:
    """Attach an empty holder to every block and hook every block's feed-forward sub-layer, once."""
    layout = layout_of(model)
    base = model.base_model
    state = AdapterState(sites=[], hidden_size=model.config.hidden_size)
    for index, block in enumerate(_blocks(base, layout)):
        owner = layout.owner(block)
        holder: nn.Module = nn.ModuleDict() if layout.slot == "adapters" else AdapterSlot()
        owner.add_module(layout.slot, holder)
        state.slots.append((owner, layout.slot))
        adapters = holder if isinstance(holder, nn.ModuleDict) else holder.adapters
        site = Site(index=index, adapters=adapters, prefix="")
        state.sites.append(site)
        target = layout.target(block)
        if layout.post_ln:
            state.handles.append(target.dropout.register_forward_hook(partial(_capture_ffn_out, site)))
            state.handles.append(target.register_forward_hook(partial(_post_ln_hook, state, site), with_kwargs=True))
        else:
            state.handles.append(target.register_forward_hook(partial(_pre_ln_hook, state, site)))
    names = {module: path for path, module in base.named_modules()}
    for site in state.sites:
        site.prefix = f"{model.base_model_prefix}.{names[site.adapters]}."
    setattr(model, STATE_ATTR, state)  # a plain attribute (not a module): not in the state dict
    return state


def _uninstall(model: PreTrainedModel, state: AdapterState) -> None:
    for handle in state.handles:
        handle.remove()
    for owner, slot in state.slots:
        delattr(owner, slot)
    delattr(model, STATE_ATTR)


def _capture_ffn_out(site: Site, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
    """BERT-style: keep h (the feed-forward output after dropout) for the sub-layer's hook."""
    site.ffn_out = output


def _post_ln_hook(state: AdapterState, site: Site, module: nn.Module, args: tuple, kwargs: dict[str, Any],
                  output: torch.Tensor) -> torch.Tensor | None:
    """Replace BertOutput's LayerNorm(h + x) by the seq_bn stack around it (None: output unchanged)."""
    ffn_out, site.ffn_out = site.ffn_out, None
    stack = state.stack_at(site)
    if not stack:
        return None
    residual = args[1] if len(args) > 1 else kwargs["input_tensor"]
    return seq_bn_post_ln(ffn_out, residual, stack, module.LayerNorm)


def _pre_ln_hook(state: AdapterState, site: Site, module: nn.Module, args: tuple, output: Any) -> Any:
    """Apply the seq_bn stack to the sub-layer's output (residual included); None: output unchanged."""
    stack = state.stack_at(site)
    if not stack:
        return None
    if isinstance(output, tuple):
        return (seq_bn_pre_ln(output[0], stack), *output[1:])
    return seq_bn_pre_ln(output, stack)
