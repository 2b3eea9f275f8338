"""Learning-rate and regulariser-weight schedules (spec section 5, bug 8).

Owns: the WSD (warmup - stable - decay) learning-rate multiplier and its LambdaLR, and the
quadratic FLOPS-weight warm-up lambda * min(1, (t / t_w)^2). Both are functions of the
optimizer step, so a resumed run continues exactly where it stopped. The official warm-up
never runs (it looks for an attribute the model does not have) and steps per micro-batch;
this one is driven by the optimizer step the trainer reports.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def wsd_steps(total_steps: int, warmup_ratio: float, decay_ratio: float) -> tuple[int, int]:
    """(warmup steps = ceil(ratio * T), decay steps = floor(decay * T))."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0 <= warmup_ratio <= 1 or not 0 <= decay_ratio <= 1 or warmup_ratio + decay_ratio > 1:
        raise ValueError(f"bad WSD ratios: warmup {warmup_ratio}, decay {decay_ratio} (each in [0,1], sum <= 1)")
    return math.ceil(warmup_ratio * total_steps), math.floor(decay_ratio * total_steps)


def wsd_factor(step: int, total_steps: int, warmup_ratio: float, decay_ratio: float) -> float:
    """LR multiplier at optimizer step `step` (0-based, the value LambdaLR asks for).

    Linear warm-up step/W over the first W steps, then 1, then linear decay to 0 over the
    last D steps: (T - step) / D.
    """
    warmup, decay = wsd_steps(total_steps, warmup_ratio, decay_ratio)
    if warmup and step < warmup:
        return step / warmup
    decay_start = total_steps - decay
    if decay and step >= decay_start:
        return max(0.0, (total_steps - step) / decay)
    return 1.0


def wsd_scheduler(optimizer: Optimizer, total_steps: int, warmup_ratio: float, decay_ratio: float) -> LambdaLR:
    wsd_steps(total_steps, warmup_ratio, decay_ratio)  # validate now, not at the first step
    return LambdaLR(optimizer, lambda s: wsd_factor(s, total_steps, warmup_ratio, decay_ratio))


def flops_weight(step: int, weight: float, warmup_steps: int) -> float:
    """lambda * min(1, (step / warmup_steps)^2); the full weight when warmup_steps <= 0."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return float(weight)
    return float(weight) * (step / warmup_steps) ** 2
