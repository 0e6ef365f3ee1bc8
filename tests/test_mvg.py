"Behaviour of the MVG in-context painter (medfound.ssl.mvg) beyond the chapter's inline checks."
import numpy as np
import pytest
import torch

from medfound.ssl.mvg import (ARMS, MVG, TASKS, TRIVIAL, UNSEEN, dice, episodes, half_mask, mim_mask, mse, mvg_loss,
                              predict, slice_stack, task_pair, tissue_maps, train_mvg, trivial)
from medfound.vision.common import patchify, unpatchify


def _toy_stack(n=6, s=16, seed=0):
    rng = np.random.default_rng(seed)
    t1 = rng.random((n, s, s), dtype=np.float32)
    return dict(t1=t1, wm=(t1 > 0.6).astype(np.float32), t2=1 - t1, gm=(t1 < 0.3).astype(np.float32))


@pytest.mark.parametrize("merge_after,depth", [(0, 2), (1, 3), (0, 3)])
def test_ar_is_causal_for_every_patch(merge_after, depth):
    "Changing query label patch k never moves the outputs at query positions <= k; it does move a later one."
    torch.manual_seed(depth)
    net = MVG(size=8, patch=4, dim=16, depth=depth, heads=2, merge_after=merge_after).eval()
    n = net.n
    x = [torch.rand(2, 1, 8, 8) for _ in range(4)]
    with torch.no_grad():
        base = net(*x, "ar")
        for k in range(n):
            q = patchify(x[3], 4).clone(); q[:, k] += 1.0
            out = net(*x[:3], unpatchify(q, 4, (8, 8)), "ar")
            assert torch.equal(out[:, :n + k + 1], base[:, :n + k + 1])
            if k < n - 1: assert (out[:, n + k + 1:] - base[:, n + k + 1:]).abs().max() > 0


def test_prompt_positions_never_see_the_query_labels_under_ar():
    torch.manual_seed(0)
    net = MVG(size=8, patch=4, dim=16, depth=2, heads=2).eval()
    x = [torch.rand(2, 1, 8, 8) for _ in range(4)]
    with torch.no_grad():
        a = net(*x, "ar"); b = net(*x[:3], torch.rand(2, 1, 8, 8), "ar")
    assert torch.equal(a[:, :net.n], b[:, :net.n])
    m = net.ar_mask
    assert m[:net.n, :net.n].all() and not m[:net.n, net.n:].any() and m[net.n:, :net.n].all()


def test_mim_uses_visible_labels_and_ignores_hidden_ones():
    torch.manual_seed(1)
    net = MVG(size=8, patch=4, dim=16, depth=2, heads=2).eval()
    x = [torch.rand(2, 1, 8, 8) for _ in range(4)]
    hide = half_mask(2, net.n)
    with torch.no_grad():
        base = net(*x, "mim", hide)
        assert torch.equal(base, net(*x[:3], torch.rand(2, 1, 8, 8), "mim", hide))       # hidden query labels
        assert not torch.equal(base, net(x[0], torch.rand(2, 1, 8, 8), *x[2:], "mim", hide))  # the visible prompt label matters


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="merge_after"): MVG(depth=2, merge_after=1)
    net = MVG(size=8, patch=4, dim=16, depth=2, heads=2)
    x = [torch.rand(1, 1, 8, 8) for _ in range(4)]
    with pytest.raises(ValueError, match="mode"): net(*x, "diffusion")
    with pytest.raises(ValueError, match="mask"): net(*x, "mim", torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mode"): predict(net, x[0], x[1], x[2], "beam")
    with pytest.raises(ValueError, match="mim_share"): train_mvg([*x, torch.zeros(1)], mim_share=2, steps=1)
    with pytest.raises(KeyError, match="choose from"): task_pair("bogus", _toy_stack(), [0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="distinct"): episodes("synthesis", _toy_stack(), [1], [1], 3, seed=0)


def test_loss_is_zero_for_a_perfect_painter_and_counts_hidden_patches_only():
    torch.manual_seed(2)
    net = MVG(size=8, patch=4, dim=16, depth=2, heads=2)
    pi, pl, qi, ql = (torch.rand(4, 1, 8, 8) for _ in range(4))
    with torch.no_grad():                              # a painter whose last layer outputs a constant: zero weights + bias
        net.decoder_pred[-1].weight.zero_(); net.decoder_pred[-1].bias.fill_(0.5)
    const = torch.full_like(ql, 0.5)
    seg = torch.zeros(4)
    # AR loss only reads the query half: a wrong prompt label does not change it
    l1 = mvg_loss(net, (pi, pl, qi, const, seg), "ar")
    l2 = mvg_loss(net, (pi, torch.rand_like(pl), qi, const, seg), "ar")
    assert l1.item() == 0.0 and l2.item() == 0.0
    assert mvg_loss(net, (pi, pl, qi, ql, seg), "ar").item() > 0


def test_mim_mask_matches_the_official_recipe():
    g = torch.Generator().manual_seed(3)
    m = mim_mask(1000, 4, 0.5, g, seg=torch.tensor([1.0, 0.0] * 500))
    assert m.sum(1).eq(4).all()
    assert m[::2, 4:].all()                                          # segmentation: always the query half
    half = m[1::2, 4:].all(1).float().mean()
    assert 0.4 < half < 0.6                                          # 0.5 by design


def test_tissue_maps_order_t2_like_contrast():
    g = np.mgrid[-10:11, -10:11, -10:11]; r = np.sqrt((g ** 2).sum(0))
    wm = (r < 4).astype(np.float32); gm = ((r >= 4) & (r < 7)).astype(np.float32)
    brain, csf, t2 = tissue_maps(gm, wm)
    assert t2[10, 10, 10] < t2[10, 10, 15] < t2[10, 10, 17]         # white < grey < fluid (r = 0, 5, 7)
    assert not brain[0, 0, 0] and t2[0, 0, 0] == 0


def test_slice_stack_crops_to_the_mask_and_thresholds_labels():
    v = np.zeros((20, 20, 6), np.float32); v[5:15, 5:15, 1:5] = 1
    out = slice_stack(dict(a=v, b=v * 0.5), v > 0, size=5, binary=("a",))
    assert out["a"].shape == (4, 5, 5) and out["z"].tolist() == [1, 2, 3, 4]
    assert out["a"][:, 2, 2].min() == 1 and set(np.unique(out["a"])) <= {0.0, 1.0}
    assert np.isclose(out["b"].max(), 0.5)
    with pytest.raises(ValueError, match="shape"): slice_stack(dict(a=v[:10]), v > 0)


def test_tasks_give_labels_in_unit_range_and_unseen_task_uses_grey_matter():
    sl = _toy_stack()
    for t in TASKS + (UNSEEN,):
        img, lab = task_pair(t, sl, np.arange(3), np.random.default_rng(0))
        assert img.shape == lab.shape == (3, 16, 16) and img.min() >= 0 and lab.max() <= 1
    assert np.array_equal(task_pair(UNSEEN, sl, [2], np.random.default_rng(0))[1], sl["gm"][[2]])
    e = episodes("segmentation", sl, [0, 1, 2], [3, 4], 10, seed=1)
    assert e[4].eq(1).all() and episodes("denoising", sl, [0, 1], [2], 3, seed=1)[4].eq(0).all()


def test_predict_shapes_scores_and_trivial_painters():
    torch.manual_seed(4)
    net = MVG(size=8, patch=4, dim=16, depth=2, heads=2)
    pi, pl, qi = (torch.rand(5, 1, 8, 8) for _ in range(3))
    for mode in ("mim", "ar"):
        assert predict(net, pi, pl, qi, mode, batch=2).shape == (5, 1, 8, 8)
    tv = trivial(pl, qi, torch.zeros(1, 1, 8, 8))
    assert list(tv) == list(TRIVIAL) and torch.equal(tv["copy prompt label"], pl) and tv["mean label"].shape == qi.shape
    assert mse(torch.full((1, 4), 2.0), torch.ones(1, 4)) == 0.0                 # predictions are clipped to [0, 1]
    assert dice(torch.tensor([0.9, 0.1, 0.8]), torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(2 / 3)


def test_hybrid_schedule_switches_once_and_training_lowers_the_loss():
    sl = _toy_stack(n=8)
    data = episodes("synthesis", sl, np.arange(8), np.arange(8), 64, seed=0)
    r = train_mvg(data, mim_share=ARMS["hybrid"], steps=30, batch_size=16, lr=1e-2, seed=0, progress=False,
                  size=16, patch=4, dim=16, depth=2, heads=2)
    assert r["modes"] == ["mim"] * 15 + ["ar"] * 15
    ar_losses = [l for (_, l), m in zip(r["history"], r["modes"]) if m == "ar"]
    assert np.isfinite(ar_losses).all()
    first = np.mean([l for _, l in r["history"][:3]]); last = np.mean([l for _, l in r["history"][-3:]])
    assert last < first
