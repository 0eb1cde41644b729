"""Neuron models: the seam where a layer's coding and firing rule plug in.

Every layer of a model names its neuron model (``SnnLayer.neuron``). A neuron model is one
module in this package, registered in ``NEURON_MODELS``; it owns everything that depends on
how the layer fires and what its spikes mean:

- ``coding``: what a spike stands for; every layer of one network shares it (a TTFS spike
  time cannot feed a rate-coded neuron);
- ``validate_layer``: the shape of its thresholds and initial potentials;
- ``potential_bound``: how large its integer potentials can grow (the accumulator width);
- ``encode`` / ``decode`` / ``check_spikes`` / ``spike_count`` / ``spikes_per_neuron``:
  the spike representation of its coding;
- ``synapse_table``, ``fire``, ``output_potentials``: the golden model's step for the layer;
- ``fold_input_scale``, ``firing_parameters``, ``output_parameters``, ``OPTIONS``: how
  conversion turns a float layer and its thresholds into integers (sw/convert.py).

The synaptic arithmetic (a spike through a 5-bit log weight adds a shifted mantissa) is
shared: the golden model's gathered sums (sw/golden.py) serve every neuron model.
Adding a neuron model means adding a module here and one entry below; the hardware lists
the models it runs in ``hw.config.unsupported``.
"""
from __future__ import annotations

from firstspike.sw.formats import FormatError

from . import diff_if, rate_if, ttfs

#: name -> module; the name is what model files store in each layer's ``neuron`` field
NEURON_MODELS = {ttfs.NAME: ttfs, rate_if.NAME: rate_if, diff_if.NAME: diff_if}
#: the neuron model of files written before the field existed (versions 1 and 2)
DEFAULT_NEURON = ttfs.NAME


def neuron_model(name: str):
    """The module of neuron model ``name``; FormatError listing the known ones otherwise."""
    try:
        return NEURON_MODELS[name]
    except (KeyError, TypeError):
        raise FormatError(f"unknown neuron model {name!r}; this firstspike knows "
                          f"{', '.join(sorted(NEURON_MODELS))}") from None


def coding_of(name: str) -> str:
    """The coding (what a spike means) of neuron model ``name``."""
    return neuron_model(name).CODING
