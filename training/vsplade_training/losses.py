"""Training losses of V-SPLADE (spec section 5), as pure tensor functions.

Owns: InfoNCE with in-batch and hard negatives gathered across ranks, the FLOPS regulariser,
the caption gate (binary bag of words of the caption ids), the push-up target (passage /
passage_mean overlap, plain or Zipfian) and the push-up loss, and `combine_losses`, which
adds the terms with their weights. Nothing here knows about models or data; every function is
checked against hand-computed values in tests/training/test_losses.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOGIT_CLAMP = 100.0
PUSH_EPS = 1e-8
OVERLAP_TYPES = ("passage", "passage_mean")
PUSH_MODES = ("logsigmoid_h", "raw_h", "raw_reps")


def _dist_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate `x` from every rank in rank order; only the local slice keeps its gradient.

    Identity when torch.distributed is not initialised (one process). All ranks must pass
    tensors of the same shape (homogeneous batches of the same size guarantee it).
    """
    rank, world = _dist_world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts, dim=0)


def info_nce(
    q: torch.Tensor,
    p: torch.Tensor,
    hard_neg: torch.Tensor | None = None,
    temperature: float = 1.0,
    gather: bool = True,
) -> torch.Tensor:
    """CE(clamp(Q_g [P_g; HN_g]^T / tau, +-100)) with target column i for query i.

    q, p: [B, V] local queries and their positives; hard_neg: [B*k, V] or None. With several
    ranks every query sees W*B passages plus all gathered hard negatives (spec section 5).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if q.shape[0] != p.shape[0]:
        raise ValueError(f"{q.shape[0]} queries but {p.shape[0]} positives")
    if gather:
        q, p = gather_with_grad(q), gather_with_grad(p)
        if hard_neg is not None:
            hard_neg = gather_with_grad(hard_neg)
    docs = p if hard_neg is None or hard_neg.shape[0] == 0 else torch.cat([p, hard_neg], dim=0)
    logits = (q.float() @ docs.float().T / temperature).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
    target = torch.arange(q.shape[0], device=q.device)
    return F.cross_entropy(logits, target)


def flops_reg(reps: torch.Tensor) -> torch.Tensor:
    """F(R) = sum_v (mean_i |R_iv|)^2 over the local batch."""
    if reps.shape[0] == 0:
        return reps.new_zeros((), dtype=torch.float32)
    return (reps.float().abs().mean(dim=0) ** 2).sum()


def caption_bow(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    vocab_size: int,
    masked_ids: tuple[int, ...] | list[int] = (),
) -> torch.Tensor:
    """Binary bag of words [B, V] of the caption ids: 1 where the id occurs (not padding).

    Ids >= vocab_size (vision tokens) are dropped, the special ids are masked and id 0 is
    cleared, as in the official gate.
    """
    ids = input_ids.long()
    keep = attention_mask.bool() & (ids < vocab_size) & (ids >= 0)
    bow = torch.zeros(ids.shape[0], vocab_size, dtype=torch.float32, device=ids.device)
    src = keep.float()
    bow.scatter_add_(1, torch.where(keep, ids, torch.zeros_like(ids)), src)
    bow = (bow > 0).float()
    bow[:, 0] = 0.0
    for i in masked_ids:
        if i < vocab_size:
            bow[:, i] = 0.0
    return bow


def gate_caption(c_raw: torch.Tensor, bow: torch.Tensor) -> torch.Tensor:
    """C = C_raw * BoW(caption): the caption vector keeps only tokens the caption contains."""
    return c_raw * bow.to(c_raw.dtype)


def push_up_overlap(p: torch.Tensor, c: torch.Tensor, overlap_type: str = "passage", alpha: float = 0.0) -> torch.Tensor:
    """o = p * c (passage) or (p + alpha * mean_v p) * c (passage_mean); inputs detached."""
    p = p.detach().float()
    c = c.detach().float()
    if overlap_type == "passage":
        return p * c
    if overlap_type == "passage_mean":
        return (p + alpha * p.mean(dim=1, keepdim=True)) * c
    raise ValueError(f"overlap_type must be one of {OVERLAP_TYPES}, got {overlap_type!r}")


def push_up_target(overlap: torch.Tensor, zipfian: bool = False, tau_push: float = 1.0) -> torch.Tensor:
    """Normalised target per row.

    Plain: o / (sum o + 1e-8). Zipfian: o_v^(1/tau_push) over the entries with o > 0,
    normalised to sum 1; rows without any overlap give all zeros.
    """
    o = overlap.float().clamp_min(0.0)
    if not zipfian:
        return o / (o.sum(dim=1, keepdim=True) + PUSH_EPS)
    if tau_push <= 0:
        raise ValueError(f"tau_push must be > 0, got {tau_push}")
    pos = o > 0
    powered = torch.where(pos, o.clamp_min(1e-30) ** (1.0 / tau_push), torch.zeros_like(o))
    total = powered.sum(dim=1, keepdim=True)
    return torch.where(total > 0, powered / total.clamp_min(1e-30), torch.zeros_like(powered))


def push_up_loss(target: torch.Tensor, h_max: torch.Tensor | None = None, reps: torch.Tensor | None = None, mode: str = "logsigmoid_h") -> torch.Tensor:
    """L_push = -mean_i sum_v target_iv * f_iv with f = log sigmoid(h_max) | h_max | reps."""
    if mode == "logsigmoid_h":
        f = F.logsigmoid(_need(h_max, "h_max", mode).float())
    elif mode == "raw_h":
        f = _need(h_max, "h_max", mode).float()
    elif mode == "raw_reps":
        f = _need(reps, "reps", mode).float()
    else:
        raise ValueError(f"push-up mode must be one of {PUSH_MODES}, got {mode!r}")
    # Padding positions in h_max are -1e9: the target is 0 there, so 0 * -1e9 would be fine,
    # but log sigmoid(-1e9) = -1e9 and 0 * x stays finite; guard against inf anyway.
    return -(target.detach() * torch.nan_to_num(f, neginf=-1e9)).sum(dim=1).mean()


def _need(x, name, mode):
    if x is None:
        raise ValueError(f"push-up mode {mode!r} needs {name}")
    return x


@dataclass
class LossWeights:
    """lambda_p (FLOPS on passages and hard negatives), lambda_capreg (FLOPS on captions),
    lambda_cap (push-up), lambda_capsr (caption ranking NCE)."""

    flops: float = 0.0
    caption_flops: float = 0.0
    push_up: float = 0.0
    caption_rank: float = 0.0


def combine_losses(
    q: torch.Tensor,
    p: torch.Tensor,
    *,
    weights: LossWeights,
    flops_weight: float | None = None,
    temperature: float = 1.0,
    hard_neg: torch.Tensor | None = None,
    caption: torch.Tensor | None = None,
    h_max: torch.Tensor | None = None,
    overlap_type: str = "passage",
    alpha: float = 0.0,
    zipfian: bool = False,
    tau_push: float = 1.0,
    push_mode: str = "logsigmoid_h",
    gather: bool = True,
) -> dict[str, torch.Tensor]:
    """L = CE(Z) + l_p [F(P) + F(HN)] + l_capreg F(C) + l_cap L_push + l_capsr CE(Z_cap).

    `caption` is the gated caption vector C (None in text batches or without captions: the
    caption terms are then absent). `flops_weight` is the warmed-up l_p of this step (defaults
    to weights.flops). Returns every term and their weighted sum under "loss".
    """
    lam_p = weights.flops if flops_weight is None else flops_weight
    out: dict[str, torch.Tensor] = {}
    out["rank"] = info_nce(q, p, hard_neg, temperature, gather=gather)
    reg = flops_reg(p)
    if hard_neg is not None and hard_neg.shape[0]:
        reg = reg + flops_reg(hard_neg)
    out["flops"] = reg
    total = out["rank"] + lam_p * reg
    if caption is not None:
        out["caption_flops"] = flops_reg(caption)
        target = push_up_target(push_up_overlap(p, caption, overlap_type, alpha), zipfian, tau_push)
        out["push_up"] = push_up_loss(target, h_max=h_max, reps=p, mode=push_mode)
        if weights.caption_rank:
            out["caption_rank"] = info_nce(q, caption, None, temperature, gather=gather)
        total = total + weights.caption_flops * out["caption_flops"] + weights.push_up * out["push_up"]
        if "caption_rank" in out:
            total = total + weights.caption_rank * out["caption_rank"]
    out["loss"] = total
    return out
