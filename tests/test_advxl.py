"PGD and compute accounting of the AdvXL chapter."
import pytest
import torch
import torch.nn as nn

from medfound.vision.advxl import AnyResViT, pgd, robust_accuracy, step_flops, adv_loss


class _Spy(nn.Module):
    "Linear classifier that records the `training` flag seen by every forward call."
    def __init__(self, n_in, n_out=10):
        super().__init__(); self.lin = nn.Linear(n_in, n_out); self.modes = []
    def forward(self, x):
        self.modes.append(self.training); return self.lin(x.flatten(1))


@pytest.mark.parametrize("eps,alpha,steps", [(0.03, 0.01, 1), (0.1, 0.05, 5), (0.3, 0.3, 2)])
def test_pgd_projection_and_range(eps, alpha, steps):
    torch.manual_seed(0)
    m = _Spy(2 * 6 * 6)
    x = torch.rand(16, 2, 6, 6); x[0] = 0; x[1] = 1                    # images at the pixel bounds
    y = torch.randint(0, 10, (16,))
    adv = pgd(m, x, y, eps, alpha, steps)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1 and not adv.requires_grad


def test_attack_runs_in_eval_mode_and_restores_training():
    m = _Spy(16).train()
    pgd(m, torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), 0.1, 0.05, 3)
    assert m.modes == [False] * 3 and m.training
    m.eval(); pgd(m, torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), 0.1, 0.05, 1)
    assert not m.training


def test_attack_does_not_touch_parameter_grads():
    m = _Spy(16)
    pgd(m, torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), 0.1, 0.05, 2)
    assert all(p.grad is None for p in m.parameters())


def test_pgd_beats_random_noise_on_a_linear_model():
    torch.manual_seed(1)
    m = _Spy(64)
    x = torch.rand(200, 1, 8, 8)
    with torch.no_grad(): y = m(x).argmax(-1)
    r = robust_accuracy(m, x, y, eps=0.05, steps=10)
    noise = (x + 0.05 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    with torch.no_grad(): acc_noise = (m(noise).argmax(-1) == y).float().mean().item()
    assert r["clean"] == 1.0 and r["pgd"] < acc_noise


def test_flops_scale_with_tokens_and_attack_steps():
    torch.manual_seed(2)
    net = AnyResViT(32, 4, dim=16, depth=1, heads=2)
    x, y = torch.rand(4, 1, 32, 32), torch.randint(0, 10, (4,))
    f0 = step_flops(net, x, y, res=32, eps=0.1, alpha=0.1, steps=0)
    f2 = step_flops(net, x, y, res=32, eps=0.1, alpha=0.1, steps=2)
    assert f0 > 0 and f2 > 2 * f0
    assert step_flops(net, x, y, res=16, eps=0.1, alpha=0.1, steps=0) < f0 / 3
    assert all(p.grad is None for p in net.parameters())


def test_bad_inputs():
    net = AnyResViT(32, 4, dim=16, depth=1, heads=2)
    with pytest.raises(ValueError, match="divisible"):
        net(torch.rand(1, 1, 30, 30))
    with pytest.raises(ValueError):
        pgd(net, torch.rand(1, 1, 32, 32), torch.zeros(1, dtype=torch.long), -0.1, 0.1, 1)
    loss = adv_loss(net, torch.rand(2, 1, 32, 32), torch.zeros(2, dtype=torch.long), res=16, eps=0.1, alpha=0.1, steps=1)
    assert loss.ndim == 0 and torch.isfinite(loss)


def _stage_run(splits, lr=3e-3):
    from medfound.vision.advxl import train_stage
    torch.manual_seed(0)
    X = torch.rand(32, 1, 16, 16); y = torch.randint(0, 10, (32,))
    m = AnyResViT(16, 4, dim=16, depth=1, heads=2); o = torch.optim.AdamW(m.parameters(), lr)
    g, d, lrs = torch.Generator().manual_seed(1), 0, []
    for s in splits:
        d = train_stage(m, o, X, y, res=16, pgd_steps=1, alpha=0.05, eps=0.03, steps=s, batch_size=8, lr=lr,
                        gen=g, warmup=4, done=d)
        lrs.append(o.param_groups[0]["lr"])
    return m, d, lrs


def test_train_stage_is_resumable_and_warms_up():
    (m1, d1, _), (m2, d2, lrs) = _stage_run([5]), _stage_run([1, 1, 3])
    assert d1 == d2 == 5 and not m1.training
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert lrs[0] == pytest.approx(3e-3 / 4) and lrs[1] == pytest.approx(3e-3 / 2) and lrs[2] == pytest.approx(3e-3)


def _pgd_previous(model, x, y, eps, alpha, steps, generator):
    "The hand-written PGD the chapter used before torchattacks (same step rule)."
    model.eval()
    u = torch.rand(x.shape, generator=generator)
    delta = (x + (2 * u - 1) * eps).clamp(0, 1) - x
    for _ in range(steps):
        delta.requires_grad_(True)
        g, = torch.autograd.grad(nn.functional.cross_entropy(model(x + delta), y), delta)
        delta = (delta.detach() + alpha * g.sign()).clamp(-eps, eps)
        delta = (x + delta).clamp(0, 1) - x
    return (x + delta).detach()


@pytest.mark.parametrize("steps,alpha", [(1, 0.125), (3, 0.05), (10, 0.025)])
def test_torchattacks_pgd_agrees_with_previous(steps, alpha):
    torch.manual_seed(5)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x, y = torch.rand(300, 1, 8, 8), torch.randint(0, 10, (300,))
    a = _pgd_previous(m, x, y, 0.1, alpha, steps, torch.Generator().manual_seed(9))
    b = pgd(m, x, y, 0.1, alpha, steps, seed=9)
    d = (a - b).abs()
    assert (d > 1e-6).float().mean() < 1e-3 and d.max() <= alpha + 1e-6
    with torch.no_grad():
        assert abs((m(a).argmax(-1) == y).float().mean() - (m(b).argmax(-1) == y).float().mean()) <= 0.01
    c = pgd(m, x, y, 0.1, alpha, steps, seed=10)                            # another start: a different attack
    assert (c - b).abs().max() > 1e-3


def test_pgd_seed_leaves_global_rng_and_rejects_non_pixels():
    m = _Spy(16)
    x, y = torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)
    state = torch.get_rng_state()
    assert torch.equal(pgd(m, x, y, 0.1, 0.05, 2, seed=1), pgd(m, x, y, 0.1, 0.05, 2, seed=1))
    assert torch.equal(torch.get_rng_state(), state)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd(m, x + 1.5, y, 0.1, 0.05, 1)


def test_autoattack_cascade_only_lowers_accuracy():
    from medfound.vision.advxl import autoattack_accuracy, AA_STANDARD
    torch.manual_seed(3)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    x = torch.rand(30, 1, 8, 8)
    with torch.no_grad(): y = m(x).argmax(-1)
    state = torch.get_rng_state()
    aa = autoattack_accuracy(m, x, y, eps=0.03, steps=5, square_queries=30)
    assert torch.equal(torch.get_rng_state(), state)
    seq = [aa[k] for k in ("clean",) + AA_STANDARD]
    assert seq[0] == 1.0 and seq == sorted(seq, reverse=True) and seq[-1] < 1.0
    with pytest.raises(ValueError, match="prefix"):
        autoattack_accuracy(m, x, y, eps=0.03, attacks=("fab-t",))
