"""atm22: the MONAI parts that replaced hand-written ones agree with the earlier implementations (kept here as references)."""
import numpy as np
import torch
from scipy import ndimage, stats
from medfound.airways.atm22 import largest_component, normalize_ct, CropDataset, airway_phantom, parse_tree


def lcc_scipy(mask, connectivity=1):
    "The chapter's earlier largest component: SciPy labels, largest by bincount (first in scan order on ties)."
    mask = np.asarray(mask) > 0
    lab, n = ndimage.label(mask, ndimage.generate_binary_structure(mask.ndim, connectivity))
    if n <= 1: return mask
    sizes = np.bincount(lab.ravel()); sizes[0] = 0
    return lab == sizes.argmax()


def test_lcc_matches_scipy_on_random_volumes_except_ties():
    rng = np.random.default_rng(1)
    compared = 0
    for _ in range(150):
        conn = int(rng.choice([1, 3]))
        vol = rng.random(tuple(rng.integers(3, 20, 3))) < rng.uniform(0.05, 0.45)
        sizes = np.bincount(ndimage.label(vol, ndimage.generate_binary_structure(3, conn))[0].ravel())[1:]
        ours = largest_component(vol, conn)
        assert ours.dtype == bool and ours.shape == vol.shape
        if len(sizes) > 1 and (sizes == sizes.max()).sum() > 1:      # a tie: any one of the largest is right
            assert ours.sum() == sizes.max() and not (ours & ~vol).any()
            continue
        assert np.array_equal(ours, lcc_scipy(vol, conn)); compared += 1
    assert compared > 100


def test_lcc_uses_six_connectivity_and_rejects_bad_connectivity():
    d = np.zeros((5, 5, 5), bool); d[0, 0, 0] = d[1, 1, 1] = d[2, 2, 2] = True; d[4, 0, 3] = d[4, 0, 4] = True
    assert largest_component(d).sum() == 2 and largest_component(d, 3).sum() == 3
    assert largest_component(np.zeros((4, 4, 4))).sum() == 0
    try: largest_component(d, 4); raise AssertionError("connectivity 4 accepted in 3D")
    except ValueError as e: assert "connectivity" in str(e)


def test_parsing_unchanged_and_fast():
    import time
    lab = airway_phantom(48, 9, seed=4)["label"]
    t = time.perf_counter(); p = parse_tree(lab); dt = time.perf_counter() - t
    assert np.array_equal(p["label"], ndimage.binary_fill_holes(lcc_scipy(lab, 1)))
    assert dt < 5.0, f"parse_tree took {dt:.1f} s on 48^3"


def test_window_matches_the_formula():
    hu = np.random.default_rng(0).uniform(-4000, 4000, 10_000).astype(np.float32)
    out = normalize_ct(hu)
    assert out.dtype == np.float32 and isinstance(out, np.ndarray)
    assert np.abs(out - np.clip((hu + 1000.0) / 1200.0, 0, 1)).max() <= 1e-6


def test_crops_same_law_as_before_and_follow_torch_seed():
    ph = airway_phantom(32, 7, seed=2); c = 12
    ds = CropDataset([ph["ct"]], [ph["label"]], crop=c, fg_prob=1.0)
    shp = np.array(ph["ct"].shape); rng = np.random.RandomState(0)
    for _ in range(300):                                   # every centred crop holds its airway voxel, as the clamp did
        sl = ds.slices(0, rng)
        lo = np.array([s.start for s in sl]); assert ((lo >= 0) & (lo <= shp - c)).all()
        assert ph["label"][sl].any()
    u = CropDataset([ph["ct"]], [ph["label"]], crop=c, fg_prob=0.0)
    corners = np.array([[s.start for s in u.slices(0, rng)] for _ in range(4000)])
    for ax in range(3):                                    # uniform over 0 .. shape - c, like the earlier sampler
        assert stats.chisquare(np.bincount(corners[:, ax], minlength=shp[ax] - c + 1)).pvalue > 1e-4
    mixed = CropDataset([ph["ct"]], [ph["label"]], crop=c, fg_prob=0.5)
    torch.manual_seed(5); a = [mixed[0] for _ in range(4)]
    torch.manual_seed(5); b = [mixed[0] for _ in range(4)]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert a[0][0].shape == (1, c, c, c) and a[0][1].shape == (2, c, c, c)
    try: CropDataset([ph["ct"]], [ph["label"]], crop=c, fg_prob=1.5); raise AssertionError
    except ValueError as e: assert "fg_prob" in str(e)


def test_torch_random_state_draws_from_torch():
    from medfound.airways.atm22 import TorchRandomState
    r = TorchRandomState()
    torch.manual_seed(0); a = [r.randint(5) for _ in range(50)] + [r.randint(2, 4) for _ in range(50)] + [r.rand()]
    torch.manual_seed(0); b = [r.randint(5) for _ in range(50)] + [r.randint(2, 4) for _ in range(50)] + [r.rand()]
    assert a == b and set(a[:50]) <= set(range(5)) and set(a[50:100]) == {2, 3} and 0 <= a[-1] < 1
    try: r.randint(3, 3); raise AssertionError("empty range accepted")
    except ValueError as e: assert "empty" in str(e)
