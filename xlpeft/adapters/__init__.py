"""Sequential bottleneck adapters (AdapterHub's ``seq_bn``) on frozen transformers models, for method B.

See docs/adapters.md. Typical use (MAD-X style: language adapter below, task adapter on top)::

    add_adapter(model, "lang_de", AdapterConfig(reduction_factor=16))
    add_adapter(model, "task")
    set_active(model, ["lang_de", "task"])
    params = train_only(model, "task")
"""

from xlpeft.adapters.adapterhub import config_from_adapterhub, load_adapterhub, save_adapterhub
from xlpeft.adapters.config import AdapterConfig
from xlpeft.adapters.layer import BottleneckAdapter, seq_bn_post_ln, seq_bn_pre_ln
from xlpeft.adapters.model import (
    LAYOUTS,
    active_adapters,
    adapter_config,
    adapter_modules,
    adapter_names,
    adapter_parameters,
    adapter_state_dict,
    add_adapter,
    load_adapter_state_dict,
    n_blocks,
    remove_adapter,
    set_active,
    train_only,
)

__all__ = [
    "LAYOUTS",
    "AdapterConfig",
    "BottleneckAdapter",
    "active_adapters",
    "adapter_config",
    "adapter_modules",
    "adapter_names",
    "adapter_parameters",
    "adapter_state_dict",
    "add_adapter",
    "config_from_adapterhub",
    "load_adapter_state_dict",
    "load_adapterhub",
    "n_blocks",
    "remove_adapter",
    "save_adapterhub",
    "seq_bn_post_ln",
    "seq_bn_pre_ln",
    "set_active",
    "train_only",
]
