"""Read any PyTorch model's graph (torch.fx) into the canonical Linear/ReLU chain we convert.

Accepted ops: ``Linear``; ``ReLU`` as a module, ``F.relu``, ``torch.relu`` or ``.relu()``;
``BatchNorm1d`` directly after a Linear (folded into it); ``Flatten``, ``torch.flatten``,
``.view``/``.reshape``/``.flatten`` (the data is already flat); ``Dropout`` and
``Identity`` (no-ops at inference). Anything else raises ConversionError naming the op
and the graph node where it sits.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
from torch import nn

from .convert import ConversionError

_RELU_FUNCS = {torch.relu, nn.functional.relu}
_FLATTEN_FUNCS = {torch.flatten}
_NOOP_FUNCS = {nn.functional.dropout}
_FLATTEN_METHODS = {"view", "reshape", "flatten", "contiguous"}
_NOOP_MODULES = (nn.Dropout, nn.Identity, nn.Flatten)


def fold_batchnorm(linear: nn.Linear, bn: nn.BatchNorm1d) -> nn.Linear:
    """A Linear computing bn(linear(x)) with the running statistics (inference mode)."""
    if bn.num_features != linear.out_features:
        raise ConversionError(f"BatchNorm1d has {bn.num_features} features but the Linear before it has "
                              f"{linear.out_features} outputs")
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(
            bn.running_var + bn.eps)
        shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
        bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
        folded = nn.Linear(linear.in_features, linear.out_features)
        folded.weight.copy_(linear.weight * scale[:, None])
        folded.bias.copy_((bias - bn.running_mean) * scale + shift)
    return folded


def canonical_mlp(model: nn.Module) -> nn.Sequential:
    """The model as an nn.Sequential of Linear and ReLU, BatchNorm folded (a copy)."""
    if isinstance(model, nn.Sequential) and all(isinstance(m, (nn.Linear, nn.ReLU) + _NOOP_MODULES)
                                                for m in model):
        layers = [m for m in model if isinstance(m, (nn.Linear, nn.ReLU))]
        return nn.Sequential(*[_copy(m) for m in layers])
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # fx raises many kinds for data-dependent control flow
        raise ConversionError(f"cannot trace {type(model).__name__} with torch.fx ({e})") from None
    modules = dict(gm.named_modules())
    chain: list[nn.Module] = []
    current = None  # the node holding the value flowing down the chain
    shape_queries = set()  # x.size(...) / x.shape: feed view() arguments, not the chain
    for node in gm.graph.nodes:
        where = f"at graph node '{node.name}'"
        if node.op == "placeholder":
            if current is not None:
                raise ConversionError(f"models with more than one input are not supported ({where})")
            current = node
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
        kind = _classify(node, modules, where)
        if kind == "noop":
            pass
        elif kind == "relu":
            chain.append(nn.ReLU())
        elif isinstance(kind, nn.BatchNorm1d):
            if not chain or not isinstance(chain[-1], nn.Linear):
                raise ConversionError(f"BatchNorm1d {where} must directly follow a Linear layer to be folded")
            chain[-1] = fold_batchnorm(chain[-1], kind)
        else:
            chain.append(_copy(kind))
        current = node
    return nn.Sequential(*chain)


def _is_shape_query(node: torch.fx.Node) -> bool:
    return ((node.op == "call_method" and node.target in ("size", "dim"))
            or (node.op == "call_function" and node.target is getattr and node.args[1] == "shape")
            or (node.op == "call_function" and node.target is operator.getitem
                and node.args[0].op != "placeholder" and _is_shape_query(node.args[0])))


def _copy(m: nn.Module) -> nn.Module:
    if isinstance(m, nn.Linear):
        c = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        c.load_state_dict(m.state_dict())
        return c
    return nn.ReLU()


def _classify(node: torch.fx.Node, modules: dict, where: str):
    if node.op == "call_module":
        mod = modules[node.target]
        if isinstance(mod, nn.Linear):
            return mod
        if isinstance(mod, nn.ReLU):
            return "relu"
        if isinstance(mod, nn.BatchNorm1d):
            return mod
        if isinstance(mod, _NOOP_MODULES):
            return "noop"
        raise ConversionError(f"unsupported layer {type(mod).__name__} '{node.target}' {where}; supported: "
                              "Linear, ReLU, BatchNorm1d (folded), Flatten, Dropout, Identity")
    if node.op == "call_function":
        if node.target in _RELU_FUNCS:
            return "relu"
        if node.target in _FLATTEN_FUNCS or node.target in _NOOP_FUNCS:
            return "noop"
        name = getattr(node.target, "__name__", str(node.target))
        hint = " (arithmetic on activations)" if node.target in (operator.add, operator.mul) else ""
        raise ConversionError(f"unsupported function {name}{hint} {where}")
    if node.op == "call_method":
        if node.target == "relu":
            return "relu"
        if node.target in _FLATTEN_METHODS:
            return "noop"
        raise ConversionError(f"unsupported method .{node.target}() {where}")
    raise ConversionError(f"unsupported graph operation {node.op} {where}")
