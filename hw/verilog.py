"""Verilog generation for a NeuronArray, with a manifest describing what was generated."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from amaranth.back import verilog

from firstspike.sw.files import check_output_dir, write_text
from firstspike.sw.model import SnnModel

from .config import ArrayConfig, NetworkImage, Region, network_image
from .neuron_array import NeuronArray, host_data_bits

TOP = "neuron_array"


def generate_verilog(cfg: ArrayConfig, image: NetworkImage | None = None) -> str:
    """Verilog text of the array; with an image, its memories start with that network."""
    top = NeuronArray(cfg, image)
    return verilog.convert(top, name=TOP, emit_src=False)


def write_design(out_dir: str | os.PathLike, cfg: ArrayConfig, model: SnnModel | None = None) -> Path:
    """Write ``neuron_array.v`` and ``neuron_array.json`` (configuration, bus map, model
    digest) into out_dir. The memory contents are initial values inside the Verilog, so
    no separate initialisation file is needed. Returns the Verilog path."""
    image = network_image(model, cfg) if model is not None else None
    text = generate_verilog(cfg, image)
    out = check_output_dir(out_dir, "Verilog directory")
    v_path = out / f"{TOP}.v"
    manifest = {
        "top": TOP,
        "config": cfg.to_dict(),
        "host_bus": {"addr_bits": cfg.addr_bits, "offset_bits": cfg.offset_bits,
                     "data_bits": host_data_bits(cfg),
                     "regions": {r.name: int(r) for r in Region}},
        "model": None if model is None else {"name": model.name, "sizes": model.sizes,
                                              "layers": len(model.layers)},
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    write_text(v_path, text, "Verilog file")
    write_text(out / f"{TOP}.json", json.dumps(manifest, indent=2) + "\n", "manifest")
    return v_path
