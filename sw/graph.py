"""Read any PyTorch model's graph (torch.fx) into the canonical layer chain we convert.

Accepted ops: ``Conv2d`` (square kernel, equal strides and paddings, groups 1, dilation 1,
zero padding); ``Linear``; ``ReLU`` as a module, ``F.relu``, ``torch.relu`` or ``.relu()``;
``MaxPool2d`` and ``AvgPool2d`` with kernel == stride, no padding (module or functional);
``BatchNorm2d``/``BatchNorm1d`` directly after a Conv2d/Linear (folded into it);
``AdaptiveAvgPool2d`` (and ``.mean((2, 3))``) where the output size divides the input
(an average pool, folded like one); ``Flatten``, ``torch.flatten``,
``.view``/``.reshape``/``.flatten``/``.squeeze``; ``Unflatten`` or a constant
``.view(-1, C, H, W)`` that gives a flat input its image shape; ``Dropout``,
``Dropout1d/2d/3d``, ``AlphaDropout`` and ``Identity`` (no-ops at inference); a final
``Softmax``/``LogSoftmax`` (dropped, with a warning: the argmax of the scores does not
change). ``padding='same'`` (odd kernel, stride 1) and ``'valid'`` become integers.
Anything else raises ConversionError naming the op and the graph node where it sits.

Residual blocks (``relu(f(x) + g(x))``, ``g`` the identity or a Conv2d with its BatchNorm,
the add as ``+``, ``+=``, ``torch.add`` or ``.add()``) become a ``ResidualAdd`` in the chain
after the weighted layer that ends ``f``.

The canonical chain is an ``nn.Sequential`` of ``Unflatten`` (first, for conv nets),
``Conv2d``, ``Linear``, ``ReLU``, ``MaxPool2d``, ``AvgPool2d``, ``Flatten`` and
``ResidualAdd`` that computes what the model computes on flat inputs (batch, C*H*W).
"""
from __future__ import annotations

import operator
import warnings

import torch
import torch.fx
from torch import nn

from .convert import ConversionError

_RELU_FUNCS = {torch.relu, nn.functional.relu}
_FLATTEN_FUNCS = {torch.flatten}
_NOOP_FUNCS = {nn.functional.dropout, nn.functional.dropout1d, nn.functional.dropout2d, nn.functional.dropout3d,
               nn.functional.alpha_dropout, nn.functional.feature_alpha_dropout}
_FLATTEN_METHODS = {"view", "reshape", "flatten", "contiguous", "squeeze"}
_NOOP_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                 nn.Identity)
_POOL_FUNCS = {nn.functional.max_pool2d: nn.MaxPool2d, nn.functional.avg_pool2d: nn.AvgPool2d}
#: monotone per-row maps of the class scores: the argmax is unchanged, so a final one is dropped
_FINAL_MODULES = (nn.Softmax, nn.LogSoftmax)
_FINAL_FUNCS = {nn.functional.softmax, nn.functional.log_softmax, torch.softmax, torch.log_softmax}
_FINAL_METHODS = {"softmax", "log_softmax"}
_SUPPORTED = ("Conv2d, Linear, ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (dividing evenly), "
              "BatchNorm2d/BatchNorm1d (folded), Flatten, Unflatten, Dropout (all kinds), Identity, "
              "a final Softmax/LogSoftmax")


class _FinalScoresMap:
    """Marks a Softmax/LogSoftmax: allowed only as the network's last operation."""

    def __init__(self, name: str, where: str):
        self.name, self.where = name, where


def _bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    if bn.running_mean is None or bn.running_var is None:
        raise ConversionError(f"{type(bn).__name__} without running statistics (track_running_stats=False) "
                              "normalises with each batch's own statistics, so it is no fixed affine map and "
                              "cannot be folded; train it with running statistics")
    inv = 1 / torch.sqrt(bn.running_var + bn.eps)
    scale = bn.weight * inv if bn.affine else inv
    shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
    return scale, shift


def fold_batchnorm(layer: nn.Linear | nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A copy of ``layer`` computing bn(layer(x)) with the running statistics (inference mode)."""
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    if bn.num_features != out:
        raise ConversionError(f"{type(bn).__name__} has {bn.num_features} features but the "
                              f"{type(layer).__name__} before it has {out} outputs")
    folded = _copy(layer, bias=True)
    with torch.no_grad():
        scale, shift = _bn_scale_shift(bn)
        bias = layer.bias if layer.bias is not None else torch.zeros(out)
        folded.weight.copy_(layer.weight * scale.reshape(-1, *[1] * (layer.weight.dim() - 1)))
        folded.bias.copy_(bias * scale + shift)
    return folded


def canonical_network(model: nn.Module) -> nn.Sequential:
    """The model as the canonical chain (a copy; BatchNorm folded, parameters detached)."""
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # fx raises many kinds for data-dependent control flow
        raise ConversionError(f"cannot trace {type(model).__name__} with torch.fx ({e})") from None
    modules = dict(gm.named_modules())
    chain: list[nn.Module] = []
    current = None  # the node holding the value flowing down the chain
    shape_queries = set()  # x.size(...) / x.shape: feed view() arguments, not the chain
    final = None  # a Softmax/LogSoftmax seen: only no-ops may follow
    shortcut_nodes = _shortcut_branches(gm)
    position = {}  # node -> chain length when it was the value flowing down the chain
    side = {}  # shortcut branch node -> (the chain node it starts from, its modules)
    for node in gm.graph.nodes:
        where = f"at graph node '{node.name}'"
        if node.op == "placeholder":
            if current is not None:
                raise ConversionError(f"models with more than one input are not supported ({where})")
            current = node
            position[node] = 0
            continue
        if node in shortcut_nodes:  # a residual block's shortcut branch (a conv, its BatchNorm)
            source = node.all_input_nodes[0]
            start, mods = side[source] if source in side else (source, [])
            side[node] = (start, _shortcut_module(node, modules, where, mods))
            continue
        if _is_add(node):
            a, b = node.all_input_nodes
            other = b if a is current else a
            if current not in (a, b) or (other not in side and other not in position):
                raise ConversionError(f"the add {where} is not a residual connection (x + f(x)) of the layer chain")
            start, mods = side.get(other, (other, []))
            chain.append(ResidualAdd(position[start], mods[0] if mods else None))
            current = node
            position[node] = len(chain)
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise ConversionError(f"the output must be the end of the layer chain ({where})")
            break
        if node.op == "get_attr":
            raise ConversionError(f"parameters used directly in forward() are not supported ({where}, "
                                  f"'{node.target}')")
        if _is_shape_query(node) and node.all_input_nodes == [current]:
            shape_queries.add(node)
            continue
        inputs = [a for a in node.all_input_nodes if a not in shape_queries]
        if inputs != [current]:
            what = getattr(node.target, "__name__", node.target)
            raise ConversionError(f"only a chain of layers is supported: {node.op} '{what}' {where} "
                                  "does not take the previous layer's output as its only input")
        kind = _classify(node, modules, where, chain)
        if final is not None and kind is not None:
            raise ConversionError(f"{final.name} {final.where} must be the network's last operation (the "
                                  "SNN reads the class scores before it); only no-ops may follow it")
        if isinstance(kind, _FinalScoresMap):
            final = kind
        elif kind is None:
            pass
        elif isinstance(kind, nn.modules.batchnorm._BatchNorm):
            want = nn.Linear if isinstance(kind, nn.BatchNorm1d) else nn.Conv2d
            if not chain or not isinstance(chain[-1], want):
                raise ConversionError(f"{type(kind).__name__} {where} must directly follow a {want.__name__} "
                                      "layer to be folded")
            chain[-1] = fold_batchnorm(chain[-1], kind)
        elif isinstance(kind, nn.Sequential):
            chain.extend(kind)
        else:
            chain.append(kind)
        current = node
        position[node] = len(chain)
    if final is not None:
        warnings.warn(f"{final.name} {final.where} dropped: the SNN's scores are the potentials before it, "
                      "and it does not change which class scores highest", stacklevel=2)
    return nn.Sequential(*chain)


class ResidualAdd(nn.Module):
    """Marks a residual add in the canonical chain: the value at chain position ``source``
    (the chain's length when that value flowed down it; 0 is the input) comes back here,
    through ``branch`` (a 1x1 or other Conv2d with BatchNorm folded) or unchanged (None),
    and is added to the pre-activation of the weighted layer before it (docs/spec.md, 14)."""

    def __init__(self, source: int, branch: nn.Conv2d | None):
        super().__init__()
        self.source = source
        self.branch = branch


def _is_add(node: torch.fx.Node) -> bool:
    return ((node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add))
            or (node.op == "call_method" and node.target in ("add", "add_"))) and len(node.all_input_nodes) == 2


def _is_relu(node: torch.fx.Node, modules: dict) -> bool:
    return ((node.op == "call_module" and isinstance(modules.get(node.target), nn.ReLU))
            or (node.op == "call_function" and node.target in _RELU_FUNCS)
            or (node.op == "call_method" and node.target == "relu"))


def _shortcut_branches(gm: torch.fx.GraphModule) -> set:
    """The nodes of every residual add's shortcut branch. Each input of an add leads back,
    through nodes used only once, to where the two branches fork; the branch without a ReLU
    is the shortcut (an identity shortcut is the fork itself: no nodes)."""
    modules = dict(gm.named_modules())
    out = set()
    for node in gm.graph.nodes:
        if not _is_add(node):
            continue
        branches = []
        for start in node.all_input_nodes:
            path, n = [], start
            while len(n.users) == 1 and len(n.all_input_nodes) == 1 and n.op != "placeholder":
                path.append(n)
                n = n.all_input_nodes[0]
            branches.append(path)
        relu = [any(_is_relu(n, modules) for n in path) for path in branches]
        if relu[0] == relu[1]:
            raise ConversionError(f"at graph node '{node.name}': cannot tell a residual block's branch (with a ReLU) "
                                  "from its shortcut (without one)")
        out |= set(branches[1] if relu[0] else branches[0])
    return out


def _shortcut_module(node: torch.fx.Node, modules: dict, where: str, mods: list) -> list:
    """The modules of a shortcut branch so far, with ``node``'s: one Conv2d, its BatchNorm folded."""
    mod = modules.get(node.target) if node.op == "call_module" else None
    if isinstance(mod, _NOOP_MODULES):
        return mods
    if isinstance(mod, nn.Conv2d) and not mods:
        return [_conv(mod, f"'{node.target}' {where}")]
    if isinstance(mod, nn.BatchNorm2d) and len(mods) == 1:
        return [fold_batchnorm(mods[0], mod)]
    raise ConversionError(f"a residual shortcut may hold one Conv2d and its BatchNorm; not "
                          f"{type(mod).__name__ if mod is not None else node.target} {where}")


def canonical_mlp(model: nn.Module) -> nn.Sequential:
    """canonical_network for models that must be Linear/ReLU chains (no convolutions)."""
    seq = canonical_network(model)
    for idx, m in enumerate(seq):
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Unflatten)):
            raise ConversionError(f"{type(m).__name__} at position {idx} of the canonical chain: "
                                  "an MLP was expected")
    return seq


def _is_shape_query(node: torch.fx.Node) -> bool:
    return ((node.op == "call_method" and node.target in ("size", "dim"))
            or (node.op == "call_function" and node.target is getattr and node.args[1] == "shape")
            or (node.op == "call_function" and node.target is operator.getitem
                and node.args[0].op != "placeholder" and _is_shape_query(node.args[0])))


def _copy(m: nn.Module, bias: bool | None = None) -> nn.Module:
    """A detached copy of a Linear or Conv2d (optionally forcing a bias)."""
    has_bias = m.bias is not None if bias is None else bias
    if isinstance(m, nn.Linear):
        c = nn.Linear(m.in_features, m.out_features, bias=has_bias)
    else:
        c = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                      bias=has_bias)
    with torch.no_grad():
        c.weight.copy_(m.weight)
        if has_bias:
            c.bias.copy_(m.bias if m.bias is not None else torch.zeros_like(c.bias))
    return c


def _single(value, what: str, where: str) -> int:
    """One integer for both axes, or a clear error."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ConversionError(f"{what} {tuple(value)} {where}: only equal sizes for both axes are supported")
        value = value[0]
    if not isinstance(value, int):
        raise ConversionError(f"{what} {value!r} {where} must be an integer")
    return value


def _conv(mod: nn.Conv2d, where: str) -> nn.Conv2d:
    name = f"Conv2d {where}"
    if mod.groups != 1:
        raise ConversionError(f"{name}: groups={mod.groups}; only groups=1 is supported")
    if _single(mod.dilation, "dilation", where) != 1:
        raise ConversionError(f"{name}: dilation {mod.dilation}; only 1 is supported")
    if isinstance(mod.padding, str):  # 'valid' or 'same' (PyTorch allows 'same' only at stride 1)
        k = _single(mod.kernel_size, "kernel_size", where)
        if mod.padding == "same" and k % 2 == 0:
            raise ConversionError(f"{name}: padding 'same' with the even kernel {k} pads unequally; "
                                  "give an integer padding")
        c = _copy(mod)
        c.padding = (0, 0) if mod.padding == "valid" else ((k - 1) // 2,) * 2
        return c
    if mod.padding_mode != "zeros":
        raise ConversionError(f"{name}: padding_mode '{mod.padding_mode}'; only zero padding is supported")
    for what in ("kernel_size", "stride", "padding"):
        _single(getattr(mod, what), what, where)
    return _copy(mod)


def _pool(cls, kernel, stride, padding, ceil_mode, where: str, extra_ok: bool = True) -> nn.Module:
    name = f"{cls.__name__} {where}"
    k = _single(kernel, "pool kernel", where)
    s = k if stride is None or stride == [] else _single(stride, "pool stride", where)
    if s != k:
        raise ConversionError(f"{name}: kernel {k} with stride {s}; only non-overlapping pools "
                              "(stride == kernel) are supported")
    if _single(padding, "pool padding", where) != 0:
        raise ConversionError(f"{name}: padding is not supported")
    if ceil_mode:
        raise ConversionError(f"{name}: ceil_mode=True is not supported")
    if not extra_ok:
        raise ConversionError(f"{name}: unsupported options")
    return cls(k)


def _view_shape(node: torch.fx.Node, chain: list) -> nn.Module | None:
    """A constant view(-1, C, H, W) of the flat input becomes Unflatten; others flatten."""
    args = [a for a in node.args[1:]]
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = list(args[0])
    if len(args) == 4 and all(isinstance(a, int) for a in args[1:]):
        return nn.Unflatten(1, tuple(args[1:]))
    return nn.Flatten()


def _classify(node: torch.fx.Node, modules: dict, where: str, chain: list):
    """The canonical module for a node, a BatchNorm to fold, or None for a no-op."""
    if node.op == "call_module":
        mod = modules[node.target]
        name = f"'{node.target}' {where}"
        if isinstance(mod, nn.Linear):
            return _copy(mod)
        if isinstance(mod, nn.Conv2d):
            return _conv(mod, name)
        if isinstance(mod, nn.ReLU):
            return nn.ReLU()
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return mod
        if isinstance(mod, nn.MaxPool2d):
            if _single(mod.dilation, "dilation", name) != 1:
                raise ConversionError(f"MaxPool2d {name}: dilation is not supported")
            return _pool(nn.MaxPool2d, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode, name)
        if isinstance(mod, nn.AvgPool2d):
            if mod.divisor_override is not None:
                raise ConversionError(f"AvgPool2d {name}: divisor_override is not supported")
            return _pool(nn.AvgPool2d, mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode, name)
        if isinstance(mod, nn.Flatten):
            return nn.Flatten()
        if isinstance(mod, nn.Unflatten):
            return nn.Unflatten(1, tuple(mod.unflattened_size)) if mod.dim == 1 else _unsupported(mod, name)
        if isinstance(mod, _NOOP_MODULES):
            return None
        if isinstance(mod, nn.AdaptiveAvgPool2d):
            return nn.AdaptiveAvgPool2d(_single(mod.output_size, "output size", name))
        if isinstance(mod, _FINAL_MODULES):
            return _FinalScoresMap(type(mod).__name__, name)
        _unsupported(mod, name)
    if node.op == "call_function":
        if node.target in _RELU_FUNCS:
            return nn.ReLU()
        if node.target in _FLATTEN_FUNCS:
            return nn.Flatten()
        if node.target in _NOOP_FUNCS:
            return None
        if node.target in _FINAL_FUNCS:
            return _FinalScoresMap(node.target.__name__, where)
        if node.target is nn.functional.adaptive_avg_pool2d:
            size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
            return nn.AdaptiveAvgPool2d(_single(size, "output size", where))
        if node.target in _POOL_FUNCS:
            kw = dict(node.kwargs)
            args = list(node.args[1:])
            names = ["kernel_size", "stride", "padding"]
            for n, a in zip(names, args):
                kw[n] = a
            return _pool(_POOL_FUNCS[node.target], kw.get("kernel_size"), kw.get("stride"), kw.get("padding", 0),
                         kw.get("ceil_mode", False), where)
        name = getattr(node.target, "__name__", str(node.target))
        hint = " (arithmetic on activations)" if node.target in (operator.add, operator.mul) else ""
        raise ConversionError(f"unsupported function {name}{hint} {where}")
    if node.op == "call_method":
        if node.target == "relu":
            return nn.ReLU()
        if node.target in ("view", "reshape"):
            return _view_shape(node, chain)
        if node.target in _FLATTEN_METHODS:
            return nn.Flatten() if node.target in ("flatten", "squeeze") else None
        if node.target in _FINAL_METHODS:
            return _FinalScoresMap(f".{node.target}()", where)
        if node.target == "mean":
            return _global_mean(node, where)
        raise ConversionError(f"unsupported method .{node.target}() {where}")
    raise ConversionError(f"unsupported graph operation {node.op} {where}")


def _global_mean(node: torch.fx.Node, where: str) -> nn.Module:
    """``x.mean((2, 3))`` (or dims (-2, -1)) over an image: global average pooling."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
    if not isinstance(dims, (tuple, list)) or sorted(d % 4 for d in dims) != [2, 3]:
        raise ConversionError(f"unsupported .mean(dim={dims!r}) {where}: only the mean over both image axes "
                              "(global average pooling) is supported")
    pool = nn.AdaptiveAvgPool2d(1)
    return pool if keep else nn.Sequential(pool, nn.Flatten())


def _unsupported(mod: nn.Module, name: str):
    raise ConversionError(f"unsupported layer {type(mod).__name__} {name}; supported: {_SUPPORTED}")
