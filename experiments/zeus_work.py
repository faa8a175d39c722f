"""Count the work of one training step of the Zeus workloads on PyTorch's meta device.

Prints ``powerfit.power.work.ZEUS_WORK``: per workload (FLOP per sample, DRAM bytes
per sample, DRAM bytes per step) [FLOP, B, B] in FP32, from the models as Zeus trained
them (ResNet-50 at 224², ShuffleNet-v2 1× of weiaicunzai/pytorch-cifar100 at 32²,
DeepSpeech2 of SeanNaren/deepspeech.pytorch on a 12.3 s utterance, NeuMF of
guoyang9/NCF), forward + backward + optimizer step. FLOP by
:class:`torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions);
bytes as powerfit's operator graphs count them: every tensor each operator reads and
writes (views and copies of metadata left out). Two batch sizes separate what grows
with the batch from what a step moves once (weights, gradients, optimizer state).

    .venv/bin/python experiments/zeus_work.py
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

_VIEWS = {
    "detach", "view", "_unsafe_view", "t", "expand", "permute", "transpose", "slice",
    "select", "unsqueeze", "squeeze", "as_strided", "reshape", "alias", "split",
    "split_with_sizes", "chunk", "empty_like", "zeros_like", "ones_like", "empty",
    "zeros", "ones", "new_empty", "new_zeros", "_to_copy", "lift_fresh", "empty_strided",
}  # fmt: skip


class _Bytes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func.__name__.split(".")[0] not in _VIEWS:
            for x in tree_flatten((args, kwargs, out))[0]:
                if isinstance(x, torch.Tensor):
                    self.total += x.numel() * x.element_size()
        return out


def _count(model: nn.Module, make_input, loss_fn, batch: int) -> tuple[float, float]:
    model = model.to("meta")
    opt = torch.optim.Adam(model.parameters(), foreach=False)
    x = make_input(batch)
    flops, byts = FlopCounterMode(display=False), _Bytes()
    with flops, byts:
        loss_fn(model(*x)).backward()
        opt.step()
    return float(flops.get_total_flops()), float(byts.total)


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.down(x))


def resnet50() -> nn.Module:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
    ]  # fmt: skip
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(_Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def _shuffle(x, groups=2):
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class _ShuffleUnit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        if stride != 1 or cin != cout:
            self.residual = nn.Sequential(
                nn.Conv2d(cin, cin, 1), nn.BatchNorm2d(cin), nn.ReLU(),
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, cout // 2, 1), nn.BatchNorm2d(cout // 2), nn.ReLU(),
            )  # fmt: skip
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin),
                nn.Conv2d(cin, cout // 2, 1), nn.BatchNorm2d(cout // 2), nn.ReLU(),
            )  # fmt: skip
        else:
            c = cin // 2
            self.residual = nn.Sequential(
                nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU(),
                nn.Conv2d(c, c, 3, 1, 1, groups=c), nn.BatchNorm2d(c),
                nn.Conv2d(c, c, 1), nn.BatchNorm2d(c), nn.ReLU(),
            )  # fmt: skip
            self.shortcut = nn.Identity()

    def forward(self, x):
        if self.stride == 1 and isinstance(self.shortcut, nn.Identity):
            a, b = x.chunk(2, dim=1)
            return _shuffle(torch.cat([a, self.residual(b)], dim=1))
        return _shuffle(torch.cat([self.shortcut(x), self.residual(x)], dim=1))


def shufflenetv2_cifar(classes: int = 100) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 24, 3, padding=1), nn.BatchNorm2d(24)]
    cin = 24
    for cout, repeat in ((116, 3), (232, 7), (464, 3)):
        layers.append(_ShuffleUnit(cin, cout, 2))
        layers += [_ShuffleUnit(cout, cout, 1) for _ in range(repeat)]
        cin = cout
    layers += [nn.Conv2d(464, 1024, 1), nn.BatchNorm2d(1024), nn.ReLU(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, classes)]  # fmt: skip
    return nn.Sequential(*layers)


class DeepSpeech2(nn.Module):
    def __init__(self, hidden: int = 1024, layers: int = 5) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, (41, 11), (2, 2), (20, 5)), nn.BatchNorm2d(32), nn.Hardtanh(0, 20),
            nn.Conv2d(32, 32, (21, 11), (2, 1), (10, 5)), nn.BatchNorm2d(32), nn.Hardtanh(0, 20),
        )  # fmt: skip
        self.rnns = nn.ModuleList(
            nn.LSTM(32 * 41 if i == 0 else hidden, hidden, bidirectional=True, batch_first=True)
            for i in range(layers)
        )
        self.fc = nn.Linear(hidden, 29)
        self.hidden = hidden

    def forward(self, x):
        x = self.conv(x)  # (B, 32, 41, T/2)
        b, c, f, t = x.shape
        x = x.view(b, c * f, t).transpose(1, 2)
        for rnn in self.rnns:
            x, _ = rnn(x)
            x = x.view(b, t, 2, self.hidden).sum(2)  # directions summed
        return self.fc(x)


class NeuMF(nn.Module):
    def __init__(self, users: int = 6040, items: int = 3706, factor: int = 32) -> None:
        super().__init__()
        mlp = factor * 4
        self.gu, self.gi = nn.Embedding(users, factor), nn.Embedding(items, factor)
        self.mu, self.mi = nn.Embedding(users, mlp), nn.Embedding(items, mlp)
        self.mlp = nn.Sequential(
            nn.Linear(2 * mlp, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
            nn.Linear(64, 32), nn.ReLU(),
        )  # fmt: skip
        self.out = nn.Linear(factor + 32, 1)

    def forward(self, u, i):
        gmf = self.gu(u) * self.gi(i)
        mlp = self.mlp(torch.cat([self.mu(u), self.mi(i)], dim=-1))
        return self.out(torch.cat([gmf, mlp], dim=-1))


WORKLOADS = {
    "imagenet/resnet50": (resnet50, lambda b: (torch.empty(b, 3, 224, 224, device="meta"),)),
    "cifar100/shufflenetv2": (
        shufflenetv2_cifar,
        lambda b: (torch.empty(b, 3, 32, 32, device="meta"),),
    ),
    "librispeech/deepspeech2": (
        DeepSpeech2,
        lambda b: (torch.empty(b, 1, 161, 1230, device="meta"),),
    ),
    "movielens-1m/ncf": (
        NeuMF,
        lambda b: (
            torch.zeros(b, dtype=torch.long, device="meta"),
            torch.zeros(b, dtype=torch.long, device="meta"),
        ),
    ),
}


def main() -> int:
    print("ZEUS_WORK = {")
    for name, (build, make_input) in WORKLOADS.items():
        (f1, b1), (f2, b2) = (_count(build(), make_input, lambda y: y.float().sum(), n)
                              for n in (4, 8))  # fmt: skip
        per_sample = (b2 - b1) / 4
        per_step = max(b1 - 4 * per_sample, 0.0)
        flop = (f2 - f1) / 4
        print(f'    "{name}": ({flop:.4g}, {per_sample:.4g}, {per_step:.4g}),')
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
