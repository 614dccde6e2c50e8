"""Linear classifiers on cached features: the "linear probe" that measures how much a frozen layer knows.

Features are standardised with the training split's mean and standard deviation (so one learning rate fits every
layer), then a linear layer is trained with Adam (10 epochs of minibatches of 256, learning rate 1e-3 decaying
linearly to 0, L2 weight decay 1e-3). The settings are fixed rather than tuned per model, so that models are
compared under the same protocol: on Imagenette at 64 px (random init, 4,000 training images) weight decays from
1e-4 to 1 differed by under 1.5 points on a held-out 10% of the training split, within its noise (about +-1.6),
and selecting weight decay and training length on it once cost 2.3 points on val against these fixed settings.
Giving several weight decays still selects one on the held-out 10%.

Speed, because a probe trains many of these on 2 CPU cores: the work is memory-bound (a 10k x 9k matrix read per
epoch for 10 outputs), so the standardised features are stored once as bfloat16 in a shuffled copy read in
contiguous minibatches (no gather per step), and weight-decay candidates train together as one wide layer, each
candidate's slice with its own coupled L2 term, so a search reads the features once per step.
Nothing here touches the network the features came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

DEFAULT_WEIGHT_DECAYS = (1e-3,)
STORAGE = torch.bfloat16


@dataclass(frozen=True)
class LinearSettings:
    epochs: int = 10  # longer over-fits at ~9k dims: 30 epochs lost ~1 point on Imagenette at 64 px
    batch_size: int = 256
    lr: float = 1e-3
    weight_decays: tuple[float, ...] = DEFAULT_WEIGHT_DECAYS  # several: chosen on the held-out part
    holdout: float = 0.1  # fraction of the training split used to choose the weight decay
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or not self.weight_decays:
            raise ValueError("linear heads need epochs >= 1, batch size >= 1, a positive lr and a weight decay")


@dataclass
class LinearResult:
    top1: float  # percent, on the evaluation split
    train_top1: float  # percent, on the training split (a large gap means over-fitting)
    weight_decay: float
    holdout_top1: dict[str, float] = field(default_factory=dict)  # weight decay -> percent on the held-out part


@dataclass
class LinearHeads:
    """K linear classifiers over the same inputs, one per weight decay: ``weight`` is (D, K * C)."""

    weight: torch.Tensor
    bias: torch.Tensor
    num_classes: int

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, K, C) in float32."""
        out = (x @ self.weight.to(x.dtype)).float() + self.bias
        return out.view(len(x), -1, self.num_classes)

    @torch.no_grad()
    def accuracies(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096) -> list[float]:
        """Top-1 in percent of each of the K classifiers."""
        correct = torch.zeros(self.bias.numel() // self.num_classes)
        for start in range(0, len(x), batch_size):
            pred = self.logits(x[start : start + batch_size]).argmax(2)
            correct += (pred == y[start : start + batch_size, None]).sum(0)
        return (100.0 * correct / max(1, len(x))).tolist()


def standardise(train: torch.Tensor, *others: torch.Tensor, chunk: int = 2048) -> list[torch.Tensor]:
    """bfloat16 copies, centred and scaled by the training split's statistics (constant dims stay at zero)."""
    x = train.float()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    del x
    return [torch.cat([((t[i : i + chunk].float() - mean) / std).to(STORAGE) for i in range(0, len(t), chunk)])
            for t in (train, *others)]


def train_linear_heads(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decays: tuple[float, ...],
                       settings: LinearSettings) -> LinearHeads:
    """One classifier per weight decay, trained side by side on standardised ``x`` (see the module docstring)."""
    gen = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(len(x), generator=gen)
    x, y = x[order], y[order]  # one shuffled copy, then contiguous minibatches in a new order every epoch
    k = len(weight_decays)
    weight = torch.zeros(x.shape[1], k * num_classes, requires_grad=True)
    bias = torch.zeros(k * num_classes, requires_grad=True)
    decay = torch.tensor(weight_decays, dtype=torch.float32).repeat_interleave(num_classes)
    heads = LinearHeads(weight, bias, num_classes)
    optimizer = torch.optim.Adam([weight, bias], lr=settings.lr)
    starts = list(range(0, len(x), settings.batch_size))
    total = settings.epochs * len(starts)
    step = 0
    for _ in range(settings.epochs):
        for b in torch.randperm(len(starts), generator=gen).tolist():
            xb, yb = x[starts[b] : starts[b] + settings.batch_size], y[starts[b] : starts[b] + settings.batch_size]
            logits = heads.logits(xb)  # (B, K, C)
            # the sum over candidates of each one's mean cross-entropy: each slice gets its own gradient
            loss = F.cross_entropy(logits.transpose(1, 2), yb[:, None].expand(-1, k)) * k
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            weight.grad += decay * weight.detach()  # coupled L2, as Adam's weight_decay, per candidate
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * (1.0 - step / total)
            optimizer.step()
            step += 1
    weight.requires_grad_(False)
    bias.requires_grad_(False)
    return heads


def holdout_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (fit, held out); the held-out part takes ``fraction`` of every class."""
    gen = torch.Generator().manual_seed(seed + 1)
    fit, held = [], []
    for label in torch.unique(y):
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        cut = int(round(len(members) * fraction))
        held.append(members[:cut])
        fit.append(members[cut:])
    return torch.cat(fit), torch.cat(held)


def fit_linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
                     num_classes: int, settings: LinearSettings = LinearSettings()) -> LinearResult:
    """Train on ``train`` (choosing the weight decay on held-out training images when several are given) and
    report top-1 on ``val``."""
    train_s, val_s = standardise(train_x, val_x)
    holdout: dict[str, float] = {}
    chosen = settings.weight_decays[0]
    if len(settings.weight_decays) > 1:
        fit, held = holdout_split(train_y, settings.holdout, settings.seed)
        if len(held) and len(fit):
            heads = train_linear_heads(train_s[fit], train_y[fit], num_classes, settings.weight_decays, settings)
            scores = heads.accuracies(train_s[held], train_y[held])
            holdout = {f"{wd:g}": round(score, 2) for wd, score in zip(settings.weight_decays, scores)}
            chosen = settings.weight_decays[max(range(len(scores)), key=scores.__getitem__)]
    final = train_linear_heads(train_s, train_y, num_classes, (chosen,), settings)
    return LinearResult(final.accuracies(val_s, val_y)[0], final.accuracies(train_s, train_y)[0], chosen, holdout)
