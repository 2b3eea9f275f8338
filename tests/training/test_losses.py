"""Loss terms against hand-computed values on small tensors (spec section 5)."""

import math

import pytest
import torch

from vsplade_training.losses import (
    LossWeights,
    caption_bow,
    combine_losses,
    flops_reg,
    gate_caption,
    info_nce,
    push_up_loss,
    push_up_overlap,
    push_up_target,
)
from vsplade_training.schedule import flops_weight, wsd_factor, wsd_scheduler, wsd_steps


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_flops_reg_by_hand():
    # mean |R| per column: [2, 1, 0] -> 4 + 1 + 0
    assert flops_reg(t([[1, -2, 0], [3, 0, 0]])).item() == pytest.approx(5.0)


def test_info_nce_in_batch_by_hand():
    q, p = t([[1, 0], [0, 1]]), t([[2, 0], [0, 1]])
    # row 0 logits [2, 0], row 1 [0, 1]; target on the diagonal
    want = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert info_nce(q, p).item() == pytest.approx(want, rel=1e-6)


def test_info_nce_hard_negatives_and_temperature_by_hand():
    q, p, hn = t([[1, 0], [0, 1]]), t([[2, 0], [0, 1]]), t([[1, 1]])
    tau = 0.5
    rows = [[2, 0, 1], [0, 1, 1]]
    want = 0.0
    for i, r in enumerate(rows):
        z = [v / tau for v in r]
        want += -z[i] + math.log(sum(math.exp(v) for v in z))
    assert info_nce(q, p, hn, temperature=tau).item() == pytest.approx(want / 2, rel=1e-6)


def test_info_nce_clamps_logits_at_100():
    # Z = [300, 150] unclamped gives CE ~ e^-150; clamped to [100, 100] it is log 2.
    assert info_nce(t([[0, 300]]), t([[0, 1]]), t([[0, 0.5]])).item() == pytest.approx(math.log(2), rel=1e-6)


def test_caption_bow_gates_ids():
    ids = torch.tensor([[5, 7, 5, 0, 3, 12, 9]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    bow = caption_bow(ids, mask, vocab_size=10, masked_ids=(3,))
    # 5 twice -> still 1 (binary); 0 cleared; 3 masked; 12 >= V dropped; 9 is padding
    assert bow.tolist() == [[0, 0, 0, 0, 0, 1, 0, 1, 0, 0]]
    c = gate_caption(torch.arange(10, dtype=torch.float32).unsqueeze(0), bow)
    assert c.tolist() == [[0, 0, 0, 0, 0, 5, 0, 7, 0, 0]]


def test_push_up_overlap_by_hand():
    p, c = t([[1, 0, 3, 0]]), t([[1, 1, 0, 0]])
    assert push_up_overlap(p, c, "passage").tolist() == [[1, 0, 0, 0]]
    # mean_v p = 1; (p + 1 * 1) * c = [2, 1, 0, 0]
    assert push_up_overlap(p, c, "passage_mean", alpha=1.0).tolist() == [[2, 1, 0, 0]]
    with pytest.raises(ValueError, match="overlap_type"):
        push_up_overlap(p, c, "nope")


def test_push_up_targets_plain_and_zipfian():
    o = t([[2, 1, 0, 0], [0, 0, 0, 0]])
    plain = push_up_target(o)
    assert plain[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0, 0], rel=1e-6)
    assert plain[1].tolist() == [0, 0, 0, 0]
    zipf = push_up_target(o, zipfian=True, tau_push=0.5)  # o^2 = [4, 1] -> [0.8, 0.2]
    assert zipf[0].tolist() == pytest.approx([0.8, 0.2, 0, 0], rel=1e-6)
    assert zipf[1].tolist() == [0, 0, 0, 0]  # no overlap -> no target
    assert push_up_target(o, zipfian=True, tau_push=1.0)[0].tolist() == pytest.approx(plain[0].tolist(), rel=1e-6)


def test_push_up_loss_modes_by_hand():
    target = t([[0.8, 0.2, 0, 0]])
    h = t([[0.0, math.log(3), 5.0, -1e9]])  # the -1e9 is a pad position with target 0
    want = -(0.8 * math.log(0.5) + 0.2 * math.log(0.75))
    assert push_up_loss(target, h_max=h).item() == pytest.approx(want, rel=1e-6)
    assert push_up_loss(target, h_max=h, mode="raw_h").item() == pytest.approx(-(0.2 * math.log(3)), rel=1e-6)
    reps = t([[1.0, 2.0, 0, 0]])
    assert push_up_loss(target, reps=reps, mode="raw_reps").item() == pytest.approx(-(0.8 + 0.4), rel=1e-6)
    with pytest.raises(ValueError, match="needs h_max"):
        push_up_loss(target, mode="logsigmoid_h")


def test_push_up_gradient_reaches_h_max_only():
    p = t([[1, 0, 3]]).requires_grad_()
    c = t([[1, 1, 0]]).requires_grad_()
    h = t([[0.0, 0.0, 0.0]]).requires_grad_()
    target = push_up_target(push_up_overlap(p, c, "passage"))
    push_up_loss(target, h_max=h).backward()
    assert p.grad is None and c.grad is None  # overlap inputs are detached
    # d/dh of -log sigmoid(h) = -(1 - sigmoid(h)) = -0.5 at h = 0, weighted by target [1, 0, 0]
    assert h.grad[0].tolist() == pytest.approx([-0.5, 0, 0], abs=1e-6)


def test_combine_losses_weighted_sum():
    q, p = t([[1, 0, 1], [0, 1, 0]]), t([[2, 0, 0], [0, 1, 1]])
    w = LossWeights(flops=0.1, caption_flops=0.2, push_up=0.3, caption_rank=0.4)
    no_cap = combine_losses(q, p, weights=w)
    assert set(no_cap) == {"rank", "flops", "loss"}
    assert no_cap["loss"].item() == pytest.approx(no_cap["rank"].item() + 0.1 * flops_reg(p).item(), rel=1e-6)
    cap = t([[1, 0, 1], [0, 0, 1]])
    h = t([[1, -1, 0], [0, 2, 1]])
    out = combine_losses(q, p, weights=w, flops_weight=0.05, caption=cap, h_max=h, zipfian=True, tau_push=0.5)
    want = (
        out["rank"] + 0.05 * out["flops"] + 0.2 * out["caption_flops"] + 0.3 * out["push_up"] + 0.4 * out["caption_rank"]
    )
    assert out["loss"].item() == pytest.approx(want.item(), rel=1e-6)
    assert out["caption_rank"].item() == pytest.approx(info_nce(q, cap).item(), rel=1e-6)
    # hard negatives add their own FLOPS term
    hn = t([[0, 0, 4]])
    assert combine_losses(q, p, weights=w, hard_neg=hn)["flops"].item() == pytest.approx(
        flops_reg(p).item() + 16.0, rel=1e-6
    )


def test_wsd_by_hand():
    assert wsd_steps(10, 0.2, 0.3) == (2, 3)
    assert wsd_steps(10, 0.05, 0.2) == (1, 2)  # ceil / floor
    got = [wsd_factor(s, 10, 0.2, 0.3) for s in range(10)]
    assert got == pytest.approx([0, 0.5, 1, 1, 1, 1, 1, 1, 2 / 3, 1 / 3])
    with pytest.raises(ValueError):
        wsd_steps(10, 0.7, 0.5)


def test_wsd_scheduler_drives_optimizer():
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    sched = wsd_scheduler(opt, 10, 0.2, 0.3)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([wsd_factor(s, 10, 0.2, 0.3) for s in range(10)])


def test_flops_weight_quadratic_warmup():
    assert flops_weight(0, 0.01, 500) == 0.0
    assert flops_weight(250, 0.01, 500) == pytest.approx(0.0025)
    assert flops_weight(500, 0.01, 500) == pytest.approx(0.01)
    assert flops_weight(900, 0.01, 500) == pytest.approx(0.01)
    assert flops_weight(3, 0.01, 0) == pytest.approx(0.01)


def _gather_worker(rank, world, init_file, q, p, hn, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    b = q.shape[0] // world
    lq = q[rank * b : (rank + 1) * b].clone().requires_grad_()
    lp = p[rank * b : (rank + 1) * b].clone()
    lhn = hn[rank : rank + 1].clone()
    loss = info_nce(lq, lp, lhn, temperature=0.5)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": lq.grad}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes (3-20 s): make test only
def test_info_nce_gathers_across_ranks(tmp_path):
    """Two gloo ranks see W*B passages and all hard negatives: same loss as one big batch."""
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(0)
    q, p, hn = torch.rand(4, 6, generator=g), torch.rand(4, 6, generator=g), torch.rand(2, 6, generator=g)
    mp.spawn(_gather_worker, args=(2, str(tmp_path / "init"), q, p, hn, str(tmp_path)), nprocs=2, join=True)
    full_q = q.clone().requires_grad_()
    full = info_nce(full_q, p, hn, temperature=0.5, gather=False)
    full.backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["loss"].item() == pytest.approx(full.item(), rel=1e-6)
        # the local slice keeps its gradient: it equals the full-batch gradient of those rows
        assert torch.allclose(got["grad"], full_q.grad[rank * 2 : (rank + 1) * 2], atol=1e-6)
