"Behaviour of the MiM pieces (hierarchical masking, losses, hybrid encoder) beyond the chapter's inline checks."
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medfound.ssl.mim import (OCTANTS, HybridEncoder, MiMModel, SegNet, align_loss, class_lut, class_crops, crop,
                              dice_per_class, mae_loss, mim_loss, nesting_error, norm_pix_loss, octant_mask,
                              octant_of_tokens, patchify3d, pyramid, random_token_mask, reconstruct, to_grid,
                              unpatchify3d)

KW = dict(dim=24, heads=2, depth=1, dec_dim=12, proj_dim=12)


def _pyrs(seed=0, shape=(140, 150, 130)):
    return [pyramid(np.random.default_rng(seed).random(shape).astype(np.float32), 1.0)]


@pytest.mark.parametrize("g", [2, 4, 6])
def test_octants_partition_the_grid(g):
    o = octant_of_tokens(g)
    assert torch.bincount(o, minlength=8).tolist() == [(g // 2) ** 3] * 8
    c = torch.stack(torch.meshgrid(*(torch.arange(g),) * 3, indexing="ij"), -1).reshape(-1, 3)
    for k in range(8):                                     # octant k is the box at (g/2) * OCTANTS[k]
        lo = (g // 2) * OCTANTS[k]
        inside = ((c >= lo) & (c < lo + g // 2)).all(1)
        assert torch.equal(inside, o == k)


def test_masks_count_and_reject_degenerate_ratios():
    torch.manual_seed(0)
    assert (random_token_mask(7, 64, 0.75).sum(1) == 48).all()
    tm, om = octant_mask(5, 4, 0.25)
    assert (om.sum(1) == 2).all() and (tm.sum(1) == 16).all()
    for bad in (0.0, 1.0, 0.01):
        with pytest.raises(ValueError):
            random_token_mask(1, 8, bad)
    with pytest.raises(ValueError):
        octant_of_tokens(3)


def test_patchify_against_explicit_loop():
    x = torch.arange(2 * 8 ** 3, dtype=torch.float32).reshape(2, 1, 8, 8, 8)
    t = patchify3d(x, 4)
    idx = 0
    for i in range(2):
        for j in range(2):
            for k in range(2):
                assert torch.equal(t[:, idx], x[:, 0, 4 * i:4 * i + 4, 4 * j:4 * j + 4, 4 * k:4 * k + 4].reshape(2, -1))
                idx += 1
    assert torch.equal(unpatchify3d(t, 4, 2), x)
    with pytest.raises(ValueError):
        patchify3d(torch.zeros(1, 1, 6, 8, 8), 4)


def test_norm_pix_loss_is_scale_invariant_and_masked():
    torch.manual_seed(1)
    x = torch.rand(2, 1, 16, 16, 16)
    m = random_token_mask(2, 64, 0.5)
    pred = torch.randn(2, 64, 64)
    a = norm_pix_loss(pred, x, m, 4)
    assert torch.allclose(a, norm_pix_loss(pred, 3 * x + 7, m, 4), atol=1e-3)   # per-patch normalised target
    pred2 = pred.clone(); pred2[~m] = 100.0
    assert torch.allclose(a, norm_pix_loss(pred2, x, m, 4))


def test_align_loss_range_and_stopgrad():
    torch.manual_seed(2)
    p = torch.randn(6, 5, requires_grad=True); z = torch.randn(6, 5, requires_grad=True)
    v = align_loss(p, z)
    assert 0 <= v.item() <= 4
    assert torch.allclose(align_loss(p, 2.5 * p), torch.tensor(0.0), atol=1e-6)   # scale does not matter
    v.backward()
    assert z.grad is None


def test_encoder_no_leak_from_hidden_voxels():
    torch.manual_seed(3)
    enc = HybridEncoder(dim=24, heads=2, depth=1).eval()
    x = torch.rand(2, 1, 16, 16, 16)
    tm, _ = octant_mask(2, 4, 0.5)
    y = x + 3 * torch.randn_like(x) * (1 - enc.visible(tm, 16))
    with torch.no_grad():
        assert torch.allclose(enc(x, tm)[0], enc(y, tm)[0], atol=1e-5)
        assert not torch.allclose(enc(x)[0], enc(y)[0], atol=1e-3)     # without the mask they differ
    with pytest.raises(ValueError):
        enc(torch.rand(1, 1, 8, 8, 8))


def test_mim_levels_nest_and_budget_matches_mae():
    torch.manual_seed(4)
    pyrs = _pyrs()
    model = MiMModel(**KW)
    out = {}
    corners = torch.tensor([[0, 0, 0], [2, 3, 1], [1, 1, 1]])
    loss = mim_loss(model, pyrs, [0, 0, 0], corners, out=out)
    assert torch.isfinite(loss) and nesting_error(out) < 1e-6
    for l in range(2):                                       # the followed octant is hidden at its level
        for b in range(3):
            k = int(out["octant"][l][b])
            assert bool(out["mask"][l][b][octant_of_tokens(4) == k].all())
    o2 = {}
    mae_loss(model, pyrs, [0, 0, 0], corners, out=o2)
    assert o2["inputs"] == out["inputs"] == 9
    rec = reconstruct(out, 0)
    vis = ~model.encoder.visible(out["mask"][0], 16).bool()
    assert torch.allclose(rec[~vis], out["x"][0][~vis], atol=1e-5)    # visible voxels copied


def test_alignment_weight_changes_the_loss_only_by_the_align_terms():
    pyrs = _pyrs(1)
    model = MiMModel(**KW)
    corners = torch.tensor([[1, 0, 1]])
    torch.manual_seed(5); o1 = {}; l1 = mim_loss(model, pyrs, [0], corners, lam=1.0, out=o1)
    torch.manual_seed(5); o0 = {}; l0 = mim_loss(model, pyrs, [0], corners, lam=0.0, out=o0)
    assert abs((l1 - l0).item() - sum(o1["align"])) < 1e-5 and o1["rec"] == o0["rec"]


def test_segnet_dice_and_classes():
    torch.manual_seed(6)
    net = SegNet(HybridEncoder(dim=24, heads=2, depth=1), 4)
    assert net(torch.rand(2, 1, 16, 16, 16)).shape == (2, 4, 16, 16, 16)
    y = torch.randint(0, 4, (3, 8, 8, 8))
    assert dice_per_class(y, y, 4) == [1.0] * 3
    assert np.isnan(dice_per_class(torch.zeros(2, 2, 2, dtype=torch.long), torch.zeros(2, 2, 2, dtype=torch.long), 2)[0])
    lut = class_lut({1: "Precentral_L", 2: "Thalamus_R", 3: "Cerebelum_6_L", 4: "Vermis_3"})
    assert lut.tolist() == [0, 1, 2, 3, 3]
    with pytest.raises(ValueError):
        class_lut({1: "Unknown_region"})
    Y = torch.zeros(40, 40, 40, dtype=torch.long); Y[5:9, 5:9, 5:9] = 1; Y[30:34, 30:34, 30:34] = 2
    X, Yc = class_crops(torch.rand(40, 40, 40), Y, 4, seed=0)
    assert X.shape == (4, 1, 16, 16, 16) and all((Yc[i] == 1 + i % 2).any() for i in range(4))


def test_grid_and_crop_errors():
    assert to_grid(np.ones((9, 9, 9), np.float32), 0.5, 2.0).shape == (2, 2, 2)
    with pytest.raises(ValueError):
        to_grid(np.ones((4, 4, 4), np.float32), 1.0, 1.5)
    with pytest.raises(IndexError):
        crop(torch.zeros(16, 16, 16), (0, 0, 1))
