"""firstspike: from a trained PyTorch network to verified TTFS spiking-network Verilog.

The public API (``import firstspike``); the subpackages are the three parts of the flow:
``firstspike.sw`` (formats, conversion, golden model), ``firstspike.hw`` (the Amaranth
processor and its cycle model) and ``firstspike.sim`` (Verilator/cocotb simulation,
energy model). Names load on first use, so ``import firstspike`` stays cheap.
"""
from __future__ import annotations

from firstspike.errors import FirstspikeError, InputError, OutputError

__version__ = "0.2.0"

_LAZY = {
    "convert": "firstspike.api",
    "load": "firstspike.api",
    "Snn": "firstspike.api",
    "finetune_cat": "firstspike.api",
    "finetune_noise_aware": "firstspike.api",
    "Timing": "firstspike.sw.formats",
    "SnnModel": "firstspike.sw.model",
    "GoldenModel": "firstspike.sw.golden",
    "ArrayConfig": "firstspike.hw.config",
}

__all__ = ["FirstspikeError", "InputError", "OutputError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'firstspike' has no attribute {name!r}")
