"Grouped-aggregation contrastive loss (M2-Encoder): multi-process equivalence, bytes counted, bad inputs."
import pytest
import torch
import torch.nn.functional as F
from medfound.vl import m2_encoder as M
from medfound.vl_common import clip_loss


def test_distributed_matches_single_process():
    world, b, d = 4, 3, 5
    res = M.launch(M.check_worker, world, b, d)
    assert set(res[0]) == {"1", "2", "4"}
    for k, r0 in res[0].items():
        assert r0["loss_err"] < 1e-5 and r0["grad_err"] < 1e-5
        for r in res:                                    # every rank: elements sent and logits shape
            assert r[k]["sent_fwd"] == r[k]["sent_bwd"] == 2 * (int(k) - 1) * b * d
            assert r[k]["logits_shape"] == [b, int(k) * b]


def test_simulation_is_mean_of_group_losses():
    g = torch.Generator().manual_seed(1)
    U, V = (F.normalize(torch.randn(24, 6, generator=g), dim=-1) for _ in range(2))
    assert torch.allclose(M.simulated_grouped_loss(U, V, 5.0, 6, 6), clip_loss(U, V, 5.0), atol=1e-6)
    ref = torch.stack([clip_loss(U[i:i + 8], V[i:i + 8], 5.0) for i in (0, 8, 16)]).mean()
    assert torch.allclose(M.simulated_grouped_loss(U, V, 5.0, 6, 2), ref, atol=1e-6)


def test_bad_group_size():
    with pytest.raises(ValueError, match="k=3"):
        M.group_of(0, 4, 3)
    with pytest.raises(ValueError):
        M.simulated_grouped_loss(torch.zeros(8, 2), torch.zeros(8, 2), 1.0, 4, 3)
    assert M.group_of(5, 8, 4) == ([4, 5, 6, 7], 1)


def test_e2e_worker_times_every_k():
    "The end-to-end benchmark runs full training steps for every k, the placebo, and the link measurements."
    res = M.launch(M.e2e_worker, 2, [1, 2], 2, 2, 1, [64, 256], 1, 8, 1, 50, 8, 16)
    for r in res:
        assert [set(t) for t in r["reps"]] == [{"1", "2", "placebo"}] * 2
        assert all(v > 0 for t in r["reps"] for v in t.values()) and r["phi"] > 0 and set(r["ring"]) == {"64", "256"}
