"""Any nn.Module whose graph is a Linear/ReLU chain converts; everything else is named."""
import numpy as np
import pytest
import torch
from torch import nn

from firstspike.sw.convert import ConversionError, calibrate, convert
from firstspike.sw.formats import Timing
from firstspike.sw.golden import GoldenModel
from firstspike.sw.graph import canonical_mlp


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.bn1 = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(0.2)
        self.fc2 = nn.Linear(16, 8, bias=False)
        self.fc3 = nn.Linear(8, 3)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        x = nn.functional.relu(self.bn1(self.fc1(x)))
        x = torch.relu(self.fc2(self.drop(x)))
        return self.fc3(x)


def trained_like(seed=0):
    torch.manual_seed(seed)
    net = Net()
    with torch.no_grad():  # non-trivial running statistics, as after training
        net.bn1.running_mean.uniform_(-0.5, 0.5)
        net.bn1.running_var.uniform_(0.5, 2.0)
        net.bn1.weight.uniform_(0.5, 1.5)
        net.bn1.bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_canonical_chain_with_folded_batchnorm_computes_the_same():
    net = trained_like()
    seq = canonical_mlp(net)
    assert [type(m).__name__ for m in seq] == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    x = torch.rand(50, 12)
    with torch.no_grad():
        assert torch.allclose(seq(x), net(x), atol=1e-5)


def test_module_converts_and_golden_follows_float():
    net = trained_like(1)
    x = np.random.default_rng(0).random((300, 12)).astype(np.float32)
    t = Timing(T=64, B=8, frac_bits=20)
    model = convert(net, t, 1.0, calibrate(net, x, "max"))
    assert model.sizes == [12, 16, 8, 3]
    with torch.no_grad():
        ref = net(torch.as_tensor(x)).numpy()
    assert (GoldenModel(model).run(x).predictions == ref.argmax(1)).mean() > 0.8


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x) + x


class Sig(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return torch.sigmoid(self.fc(x))


class Conv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv1(x)


class BnFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.bn(x))


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return x


@pytest.mark.parametrize("net,match", [
    (Residual(), "at graph node 'add': cannot tell a residual block's branch"),
    (Sig(), "unsupported function sigmoid at graph node 'sigmoid'"),
    (Conv(), "Conv2d at position 0 of the canonical chain: an MLP was expected"),
    (BnFirst(), "BatchNorm1d at graph node 'bn' must directly follow a Linear"),
    (Branchy(), "cannot trace Branchy with torch.fx"),
])
def test_unsupported_graphs_name_the_op_and_node(net, match):
    with pytest.raises(ConversionError, match=match):
        canonical_mlp(net)
