"Behaviour of medfound.lung.sure_unsure: the CAM network, evidence share, collaborative loss, pairing, training."
import numpy as np
import pytest
import torch
from medfound.lung.sure_unsure import (ARMS, SureUnsureNet, SureUnsurePairs, collaborative_loss, evidence_share, infer,
                                       seg_dice, soft_dice_loss, train_sure_unsure, upsample_cam)

def _batch(n=4, seed=0):
    g = np.random.default_rng(seed)
    X = g.standard_normal((n, 3, 32, 32)).astype(np.float32)
    A = np.zeros((n, 3, 32, 32), np.float32); A[:, :, 12:20, 12:20] = 1
    return X, (np.arange(n) % 2).astype(np.float32), A

def test_shapes_cam_and_bad_input():
    net = SureUnsureNet(4).eval()
    o = net(torch.randn(3, 3, 32, 32))
    assert o["cam"].shape == (3, 8, 8) and o["seg"].shape == (3, 3, 32, 32) and o["feat"].shape == (3, 16)
    assert torch.allclose(o["logit"], o["cam"].mean((1, 2)) + net.cls_bias, atol=1e-6)
    assert set(net(torch.randn(1, 3, 16, 16), seg=False)) == {"logit", "cam", "score", "feat"}
    with pytest.raises(ValueError, match="divisible by 4"): net(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match="expected"): net(torch.randn(3, 32, 32))

def test_evidence_share_floor_and_extremes():
    m = torch.zeros(3, 32, 32); m[:, 4:12, 8:28] = 1
    assert torch.allclose(evidence_share(torch.full((3, 8, 8), -2.0), m), m.mean((1, 2)), atol=1e-6)   # uniform = area
    c = torch.zeros(1, 8, 8); c[0, 3:5, 3:5] = 1.0
    inside = (upsample_cam(c, (32, 32))[0] > 0).float()[None]
    assert torch.allclose(evidence_share(c, inside), torch.ones(1), atol=1e-6)
    assert float(evidence_share(c, 1 - inside)) < 1e-6
    with pytest.raises(ValueError, match="need cam"): evidence_share(torch.ones(8, 8), m)

def test_soft_dice_and_seg_dice():
    _, _, A = _batch()
    t = torch.as_tensor(A)
    assert float(soft_dice_loss(40 * (2 * t - 1), t)) < 1e-3 and float(soft_dice_loss(-40 * (2 * t - 1), t)) > 0.9
    assert np.allclose(seg_dice(2 * A - 1, A), 1) and np.allclose(seg_dice(-np.ones_like(A), A), 0)
    half = A.copy(); half[:, :, 12:16] = 0                                  # half the mask predicted: Dice 2/3
    assert np.allclose(seg_dice(2 * half - 1, A), 2 / 3)
    with pytest.raises(ValueError, match="differ in shape"): seg_dice(A[:, :1], A)

def test_collaborative_loss_parts_per_arm():
    X, y, A = _batch()
    net = SureUnsureNet(4)
    os_, ou = net(torch.as_tensor(X)), net(torch.as_tensor(X[::-1].copy()))
    expect = {"single": {"cls"}, "multitask": {"cls", "seg", "reg"}, "multitask + constraint": {"cls", "seg", "reg", "interp"}}
    for arm, w in ARMS.items():
        total, parts = collaborative_loss(os_, torch.as_tensor(y), ou, torch.as_tensor(A), torch.zeros(4), **w)
        assert set(parts) == expect[arm] and np.isfinite(float(total.detach()))
        assert 0 <= parts.get("interp", 0.5) <= 1
    with pytest.raises(ValueError, match="unsure batch"):
        collaborative_loss(os_, torch.as_tensor(y), None, None, None, unsure=1.0, interp=0.0)

def test_pairs_cycle_the_smaller_set_and_check_inputs():
    X, y, A = _batch(4)
    Xu, _, Au = _batch(10, seed=1)
    d = SureUnsurePairs(X, y, A, Xu, Au, np.linspace(-1, 1, 10))
    assert len(d) == 10 and torch.equal(d[5][0], torch.as_tensor(X[1])) and torch.equal(d[5][3], torch.as_tensor(Xu[5]))
    with pytest.raises(ValueError, match="0 or 1"): SureUnsurePairs(X, y + 2, A, Xu, Au, np.zeros(10))
    with pytest.raises(ValueError, match="finite"): SureUnsurePairs(X, y, A, Xu, Au, np.full(10, np.nan))
    with pytest.raises(ValueError, match="one shape"): SureUnsurePairs(X, y, A[:, :1], Xu, Au, np.zeros(10))
    with pytest.raises(ValueError, match="at least one"): SureUnsurePairs(X[:0], y[:0], A[:0], Xu, Au, np.zeros(10))

def test_training_same_seed_same_start_and_bad_arm():
    X, y, A = _batch(8)
    d = SureUnsurePairs(X, y, A, X, A, np.zeros(8))
    a = train_sure_unsure(d, "single", steps=1, lr=0.0, width=4, seed=3, progress=False)
    b = train_sure_unsure(d, "multitask + constraint", steps=1, lr=0.0, width=4, seed=3, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))     # arms of a seed share the start
    out = infer(b, X)
    assert out["logit"].shape == (8,) and out["seg"].shape == (8, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown arm"): train_sure_unsure(d, "both", steps=1)
