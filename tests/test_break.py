"Behaviour tests of the BREAK chapter's exported functions (medfound.airways.break_geodesic)."
import numpy as np
import pytest
import torch

from medfound.airways.break_geodesic import (BreakLoss, BreakNet, branch_detection, breakage_loss, geodesic_distance,
                                             parenchyma_seeds, skeleton_segments, tree_scores)


from shapes import tube


SH = (44, 32, 14)
FORK = tube(SH, (2, 16, 7), (14, 16, 7), 2) | tube(SH, (14, 16, 7), (41, 6, 7), 3) | tube(SH, (14, 16, 7), (41, 26, 7), 1)


def test_gdt_chamfer_without_intensity():
    seeds = np.zeros((5, 6, 7), bool); seeds[0, 0, 0] = True
    d = geodesic_distance(np.random.default_rng(0).random(seeds.shape), seeds, gamma=0.0)
    assert np.isclose(d[2, 2, 2], 2 * np.sqrt(3)) and np.isclose(d[0, 3, 0], 3) and np.isclose(d[1, 1, 0], np.sqrt(2))
    assert np.isclose(d[1, 2, 4], np.sqrt(3) + np.sqrt(2) + 2)


def test_gdt_step_cost_and_multiple_seeds():
    img = np.zeros((1, 1, 9)); img[..., 4:] = 1.0
    s = np.zeros(img.shape, bool); s[0, 0, 0] = True
    d = geodesic_distance(img, s, gamma=3.0)[0, 0]
    assert np.isclose(d[4], 3 + np.sqrt(10)) and np.isclose(d[8], 7 + np.sqrt(10))
    s[0, 0, 8] = True                                       # a second seed beyond the step: no crossing needed there
    d2 = geodesic_distance(img, s, gamma=3.0)[0, 0]
    assert np.isclose(d2[5], 3) and np.isclose(d2[3], 3)


@pytest.mark.parametrize("args,kw,words", [
    ((np.zeros((4, 4)), np.ones((4, 4), bool)), {}, "3D"),
    ((np.zeros((3, 3, 3)), np.zeros((3, 3, 2), bool)), {}, "shape"),
    ((np.zeros((3, 3, 3)), np.zeros((3, 3, 3), bool)), {}, "seeds are empty"),
    ((np.full((3, 3, 3), np.nan), np.ones((3, 3, 3), bool)), {}, "NaN"),
    ((np.zeros((3, 3, 3)), np.full((3, 3, 3), 0.5)), {}, "binary"),
    ((np.zeros((3, 3, 3)), np.ones((3, 3, 3), bool)), dict(gamma=-1.0), "gamma")])
def test_gdt_bad_inputs(args, kw, words):
    with pytest.raises(ValueError, match=words): geodesic_distance(*args, **kw)


def test_parenchyma_seeds_need_a_lung():
    with pytest.raises(ValueError, match="no lung"): parenchyma_seeds(np.full((20, 20, 20), 40.0, np.float32))


def test_segments_thin_weighs_more():
    ids, w, radius = skeleton_segments(FORK)
    assert ((ids > 0) <= FORK).all() and set(np.unique(ids)) >= {0, 1, 2, 3}
    thin = int(np.bincount(ids[24:36, 16:][ids[24:36, 16:] > 0]).argmax())
    thick = int(np.bincount(ids[24:36, :16][ids[24:36, :16] > 0]).argmax())
    assert radius[thin] < radius[thick] and w[ids == thin][0] > w[ids == thick][0]
    with pytest.raises(ValueError, match="empty"): skeleton_segments(np.zeros((5, 5, 5)))


def test_breakage_loss_charges_thin_gaps_and_is_zero_when_intact():
    ids, w, _ = skeleton_segments(FORK)
    T = lambda a: torch.as_tensor(np.asarray(a, np.float64))[None, None]
    def loss_with_gap(y0, y1):
        v = FORK.copy(); v[28:32, y0:y1] = False
        return breakage_loss(T(np.where(v, 30.0, -30.0)), T(ids), T(w)).item()
    assert loss_with_gap(0, 0) < 1e-6
    assert loss_with_gap(16, 32) > 2 * loss_with_gap(0, 16) > 0
    empty = torch.zeros(1, 1, 4, 4, 4)
    assert breakage_loss(empty, empty, empty).item() == 0.0
    with pytest.raises(ValueError, match="differ"): breakage_loss(T(FORK), T(ids)[..., :-1], T(w))


def test_breakage_loss_segments_are_per_crop():
    "The same segment id in two crops of a batch counts as two (crop, segment) pairs."
    ids = torch.zeros(2, 1, 1, 1, 4); ids[:, ..., :2] = 1; w = (ids > 0).float()
    logits = torch.full((2, 1, 1, 1, 4), -30.0); logits[0] = 30.0        # crop 0 covered, crop 1 not
    assert np.isclose(breakage_loss(logits, ids, w).item(), 0.5, atol=1e-6)


def test_break_loss_adds_the_term():
    torch.manual_seed(0)
    lg = torch.randn(2, 1, 8, 8, 8); y = (torch.rand(2, 1, 8, 8, 8) > 0.8).float()
    ids = y * torch.randint(1, 3, y.shape).float(); tg = torch.cat([y, y, ids, y], 1)
    assert BreakLoss(True, 0.5)(lg, tg).item() > BreakLoss(False)(lg, tg).item()
    with pytest.raises(ValueError, match="4 channels"): BreakLoss(True)(lg, tg[:, :2])


def test_breaknet_plain_ignores_gdt_channel():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 16, 16, 16); x2 = x.clone(); x2[:, 1] = 0
    plain, full = BreakNet((4, 8), stem=2, use_gdt=False).eval(), BreakNet((4, 8), stem=2, use_gdt=True).eval()
    with torch.no_grad():
        assert torch.equal(plain(x), plain(x2)) and not torch.equal(full(x), full(x2))
    with pytest.raises(ValueError, match="2, D, H, W"): full(x[:, :1])


def test_scores_and_bad_inputs():
    half = FORK & (np.indices(SH)[0] < 28)
    det = branch_detection(half, FORK)
    assert det["detected"].sum() < len(det["detected"]) and det["missed"].any() and not (det["missed"] & ~FORK).any()
    assert tree_scores(FORK, FORK)["BD"] == 1.0
    assert tree_scores(np.zeros(SH, bool), FORK, allow_empty=True)["DSC"] == 0.0
    for args, words in (((np.zeros(SH, bool), FORK), "prediction is empty"), ((FORK, FORK[:-1]), "shape"),
                        ((FORK, FORK * 2), "label must be binary"), ((FORK * 0.5, FORK), "prediction must be binary"),
                        ((FORK, np.zeros(SH)), "label is empty")):
        with pytest.raises(ValueError, match=words): tree_scores(*args)
