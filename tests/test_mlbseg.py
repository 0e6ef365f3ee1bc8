"""mlbseg: class grouping, slicing, views and their inverses, the meta-gradient in its three forms, the weight
normalisation and AUC, and one short run of every arm of the ladder on tiny synthetic slices."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from medfound.seg.mlbseg import (CLASS_GROUPS, ARMS, group_labels, brain_slices, make_unet, mean_dice, predict,
                                 view_thetas, invert_affine, make_views, view_labels, views_back, pseudo_labels,
                                 consistency_loss, pixel_costs, meta_weights, meta_weights_fast, normalise_weights,
                                 weight_auc, train_initial, train_bootstrap, ema_update)


def test_group_labels_and_errors():
    a = np.array([0, 71, 78, 37, 90, 43, 54, 91, 116, 1], np.int32)
    assert group_labels(a).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 0]
    with pytest.raises(ValueError, match="integer"):
        group_labels(a.astype(float))
    with pytest.raises(ValueError, match="two groups"):
        group_labels(a, {"a": [1], "b": [1]})
    assert len(CLASS_GROUPS) == 4


def test_brain_slices_box_and_filter():
    vol = np.zeros((30, 20, 8), np.float32); vol[5:25, 4:16, 1:7] = 10.0; vol[15, 10, 3] = 1000.0
    lab = np.zeros(vol.shape, np.int64); lab[10:20, 6:14, 2:5] = 3
    x, y, z = brain_slices(vol, lab, size=16, step=2)
    assert x.shape == (3, 1, 16, 16) and y.shape == (3, 16, 16) and z.tolist() == [1, 3, 5]
    assert float(x.max()) <= 1.5 and y.dtype == torch.int64
    x, y, z = brain_slices(vol, lab, size=16, step=1, min_fg=0.05)
    assert z.tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="no voxel above 0"):
        brain_slices(np.zeros((4, 4, 4)), np.zeros((4, 4, 4), int))
    with pytest.raises(ValueError, match="no slice"):
        brain_slices(vol, np.zeros_like(lab), min_fg=0.1)


def test_views_invert_and_labels():
    g = torch.Generator().manual_seed(1)
    th = view_thetas(3, g)
    inv = invert_affine(th)
    pts = torch.randn(3, 5, 2, 1)
    fwd = th[..., :2] @ pts + th[..., 2:]
    assert torch.allclose(inv[..., :2] @ fwd + inv[..., 2:], pts, atol=1e-5)
    y = torch.zeros(3, 16, 16, dtype=torch.long); y[:, 4:12, 5:11] = 2
    yv = view_labels(y, th)
    assert yv.shape == (15, 16, 16) and set(yv.unique().tolist()) <= {0, 2}
    assert torch.equal(yv[::5], y)                                   # the identity view keeps the labels
    with pytest.raises(ValueError, match="view matrices"):
        make_views(torch.zeros(2, 1, 8, 8), th)


def test_pseudo_labels_follow_the_views():
    g = torch.Generator().manual_seed(2)
    th = view_thetas(2, g)
    y = torch.zeros(2, 24, 24, dtype=torch.long); y[:, 6:18, 8:16] = 1
    probs = make_views(F.one_hot(y, 2).permute(0, 3, 1, 2).float(), th)
    avg, pl = pseudo_labels(probs, th)
    assert (avg.argmax(1) != y).float().mean() < 0.03
    assert (pl != view_labels(y, th)).float().mean() < 0.03
    back, seen = views_back(probs, th)
    assert back.shape == (2, 5, 2, 24, 24) and seen.shape == (2, 5, 1, 24, 24)
    assert float(consistency_loss(probs, th)) < float(consistency_loss(torch.rand(10, 2, 24, 24, generator=g), th))


def test_meta_gradient_forms_agree_and_point_the_right_way():
    torch.manual_seed(0)
    net = make_unet(3, (4, 8)).double()
    x, xc = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.randn(2, 1, 8, 8, dtype=torch.float64)
    yi, yp, yc = (torch.randint(0, 3, (2, 8, 8)) for _ in range(3))
    aux = lambda p: (functional_call(net, p, (x,)).softmax(1) ** 2).mean()
    for a in (None, aux):
        w1 = meta_weights(net, x, yi, yp, xc, yc, 0.3, a)
        w2 = meta_weights_fast(net, x, yi, yp, xc, yc, 0.3, a)
        assert w1.shape == (2, 2, 8, 8)
        assert float((w1 - w2).abs().max()) < 1e-10 * float(w1.abs().max())
    # a training image identical to the clean one, labelled like it: its initial-label term is helpful everywhere on average
    w = meta_weights_fast(net, xc, yc, yp[:2], xc, yc, 0.3)
    assert float(w[:, 0].sum()) > 0
    with pytest.raises(ValueError, match="do not fit"):
        pixel_costs(torch.zeros(2, 3, 8, 8), yi, yp[:1])


def test_normalise_and_auc():
    w = normalise_weights(torch.tensor([-2.0, 1.0, 3.0]))
    assert torch.allclose(w, torch.tensor([0.0, 0.25, 0.75]))
    assert float(normalise_weights(torch.zeros(4)).sum()) == 0
    assert weight_auc([5, 6, 1], [True, True, False]) == 1.0
    assert weight_auc([1, 1, 1, 1], [True, False, True, False]) == 0.5
    assert np.isnan(weight_auc([1, 2], [False, False]))
    with pytest.raises(ValueError):
        weight_auc([1, 2, 3], [True, False])


def test_dice_and_predict():
    t = torch.zeros(3, 8, 8, dtype=torch.long); t[:, 2:5, 2:5] = 1; t[:, 5:7, 5:7] = 2
    assert mean_dice(t, t, 3) == (1.0, [1.0, 1.0])
    m, per = mean_dice(torch.zeros_like(t), t, 3)
    assert m == 0.0 and per == [0.0, 0.0]
    with pytest.raises(ValueError):
        mean_dice(t[:2], t, 3)
    net = make_unet(3, (4, 8)); net.train()
    assert predict(net, torch.zeros(5, 1, 8, 8), batch=2).shape == (5, 8, 8) and net.training


def test_every_arm_runs_and_teacher_moves():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 16, 16); y = (x[:, 0] > 0.5).long()
    init = train_initial(x[:2], y[:2], 2, (4, 8), steps=2, lr=1e-2, seed=0)
    y0 = predict(init, x[2:])
    for arm in ARMS:
        out = train_bootstrap(arm, init, x[2:], y0, x[:2], y[:2], steps=2, batch=2, lr=1e-3, seed=0, y_true=y[2:])
        assert len(out["losses"]) == 2 and all(np.isfinite(out["losses"]))
        assert bool(out["weight_log"]) == ARMS[arm]["meta"]
        if ARMS[arm]["meta"]:
            e = out["weight_log"][0]
            w, ok, brain = e["w"], e["correct"], e["brain"]
            assert abs(float(w.sum()) - 1.0) < 1e-5 and float(w.min()) >= 0 and ok.shape == brain.shape == w[:, 0].shape
            assert e["x"].shape[0] == w.shape[0] and e["x_clean"].shape[0] == 2
    with pytest.raises(ValueError, match="unknown arm"):
        train_bootstrap("xx", init, x, y, x, y, steps=1, batch=1, lr=1e-3)
    t, s = make_unet(2, (4, 8)), make_unet(2, (4, 8))
    ema_update(t, s, 0.99, 0)                                        # step 0: the teacher becomes the student
    assert all(torch.equal(a, b) for a, b in zip(t.parameters(), s.parameters()))
