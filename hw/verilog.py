"""Verilog generation for a NeuronArray, with a manifest describing what was generated."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from amaranth.back import verilog

from firstspike.sw.files import check_output_dir, write_text
from firstspike.sw.model import SnnModel

from . import external
from .config import ArrayConfig, NetworkImage, bus_map, network_image
from .layouts import header_words
from .neuron_array import NeuronArray, host_data_bits

TOP = "neuron_array"


#: a memory's initial block that sets every entry to zero, one line per entry
_ZERO_INIT = re.compile(r"^[ \t]+initial begin\n(?:[ \t]+\S+\[\d+\] = \d+'h0+;\n)+[ \t]+end\n", re.MULTILINE)


def generate_verilog(cfg: ArrayConfig) -> str:
    """Verilog text of the array: it depends on the configuration only (networks live in
    external memory).

    Memories whose initial contents are all zero are written without initial values: the
    design never reads an entry it has not written (the buffers are loaded before use, the
    accumulators are cleared by the first run), and a weight buffer's zero initialisation
    would otherwise be one line per entry (131 K lines at 16 PEs)."""
    top = NeuronArray(cfg)
    return _ZERO_INIT.sub("", verilog.convert(top, name=TOP, emit_src=False))


def write_design(out_dir: str | os.PathLike, cfg: ArrayConfig, model: SnnModel | None = None, *,
                 image: NetworkImage | None = None) -> Path:
    """Write ``neuron_array.v`` and ``neuron_array.json`` (configuration, host bus map, model
    digest) into out_dir. With a model, ``memory.hex`` holds the network's image in external
    memory (one bus word per line, ``$readmemh`` format) to be placed at the network address
    (0 after reset); the manifest's ``external_memory`` says where each layer's blocks are,
    relative to it (``image``: the model's ``network_image``, when the caller has it already).
    Returns the Verilog path."""
    if image is None and model is not None:
        image = network_image(model, cfg)
    text = generate_verilog(cfg)
    out = check_output_dir(out_dir, "Verilog directory")
    v_path = out / f"{TOP}.v"
    manifest = {
        "top": TOP,
        "config": cfg.to_dict(),
        "host_bus": {"addr_bits": cfg.addr_bits, "offset_bits": cfg.offset_bits,
                     "data_bits": host_data_bits(cfg),
                     **bus_map()},
        "model": None if model is None else {"name": model.name, "sizes": model.sizes,
                                              "layers": len(model.layers)},
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "external_memory": None if image is None else {
            "file": "memory.hex", "bus_bits": cfg.bus_bits, "words": len(image.memory),
            "header_words": header_words(cfg),
            "layers": [{"header_addr": k * header_words(cfg) * cfg.bus_bits // 8,
                        "bias_addr": d.bias_addr, "bias_words": d.bias_beats, "weight_addr": d.weight_addr,
                        "tiles": d.tiles, "slots_per_tile": d.tile_slots, "bands": d.bands,
                        "rows_per_band": d.band_rows,
                        "weight_words": d.tile_beats * (d.tiles - 1) + d.last_beats}
                       for k, d in enumerate(image.descriptors)]},
    }
    write_text(v_path, text, "Verilog file")
    write_text(out / f"{TOP}.json", json.dumps(manifest, indent=2) + "\n", "manifest")
    if image is not None:
        write_text(out / "memory.hex", external.memory_hex(image.memory, cfg.bus_bits), "external memory image")
    return v_path
