"""aiib23: the challenge's metrics, the weighted union and continuity losses, the fibrotic phantom, the biomarkers
and the survival simulator, on small hand-made inputs."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from medfound.airways.atm22 import airway_phantom, largest_component
from medfound.airways.aiib23 import (AIIB_KEYS, check_binary, aiib_reference, aiib_metrics, mean_aiib, local_imbalance_weight,
                                     union_alpha, weighted_union_loss, skeleton_recall_loss, AIIBLoss, fibrotic_phantom,
                                     distal_wlr, airway_biomarkers, simulate_survival, cox_univariable)


from shapes import TREE as Y, TREE_SHAPE as SH, tube as _tube


def test_metrics_perfect_leak_and_cut():
    ref = aiib_reference(Y)
    assert ref["n_branches"] == 3
    m = aiib_metrics(Y, ref=ref)
    assert all(np.isclose(m[k], 1) for k in ("IoU", "DLR", "DBR", "precision")) and m["leakage"] == 0
    blob = np.zeros(SH, bool); blob[8:14, 23:29, 8:13] = True          # touches the stem across a face
    ml = aiib_metrics(Y | blob, ref=ref)
    assert np.isclose(ml["leakage"], blob.sum() / Y.sum()) and ml["precision"] < 1 and ml["DBR"] == 1
    assert aiib_metrics(Y | np.roll(blob, 2, axis=1), ref=ref) == m      # detached: not in the largest component
    mc = aiib_metrics(Y & (np.indices(SH)[0] < 27), ref=ref)
    assert np.isclose(mc["DBR"], 1 / 3) and 0 < mc["DLR"] < 1 and mc["leakage"] == 0
    assert mean_aiib([np.zeros(SH, bool), Y], [ref, ref])["DBR"] == 0.5


def test_all_foreground_detects_everything_and_leaks():
    m = aiib_metrics(np.ones(SH, bool), Y)
    assert m["DLR"] == 1 and m["DBR"] == 1 and np.isclose(m["leakage"], (~Y).sum() / Y.sum())


@pytest.mark.parametrize("pred, gt, words", [
    (np.zeros(SH, bool), Y, "prediction is empty"), (Y[:-1], Y, "shape"), (Y * 0.5, Y, "binary"),
    (Y, Y.astype(int) * 2, "binary"), (Y, np.zeros(SH, bool), "label is empty")])
def test_bad_inputs_name_the_problem(pred, gt, words):
    with pytest.raises(ValueError, match=words):
        aiib_metrics(pred, gt)


def test_empty_prediction_scored_only_on_request():
    assert aiib_metrics(np.zeros(SH, bool), Y, allow_empty=True) == {k: 0.0 for k in AIIB_KEYS}
    with pytest.raises(ValueError, match="3D"):
        check_binary(np.zeros((3, 3)))


def test_union_loss_closed_form_and_gradient():
    y = torch.zeros(1, 1, 7, 7, 7, dtype=torch.float64); y[0, 0, 3, 3, 3] = 1
    c, a, r = 0.4, 0.1, 2.2
    d = np.log10(343) ** r
    expect = 1 - (d * (c + 1e-4) ** 0.7 + 1) / (d * (a * c + 1 - a) + 342 * a * c + 1)
    got = weighted_union_loss(torch.full_like(y, np.log(c / (1 - c))), y, alpha=a, power=r).item()
    assert abs(got - expect) < 1e-12
    torch.manual_seed(0)
    x = torch.randn(1, 1, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    yb = (torch.rand(1, 1, 8, 8, 8) > 0.7).double()
    assert torch.autograd.gradcheck(lambda l: weighted_union_loss(l, yb, power=2.7), (x,))
    assert torch.autograd.gradcheck(lambda l: skeleton_recall_loss(l, yb), (x,))


def test_weight_map_and_schedule():
    y = torch.zeros(1, 1, 9, 9, 9); y[0, 0, 4, 4, 4] = 1
    w = local_imbalance_weight(y, power=2.0)
    assert torch.isclose(w[0, 0, 4, 4, 4], torch.tensor(np.log10(343.0) ** 2, dtype=torch.float32)) and (w[y == 0] == 1).all()
    assert torch.all(local_imbalance_weight(torch.ones(1, 1, 8, 8, 8)) == 0)     # solid airway: no weight
    with pytest.raises(ValueError, match="smaller"):
        local_imbalance_weight(torch.zeros(1, 1, 5, 5, 5))
    assert [union_alpha(s, 10) for s in (0, 4, 5, 9)] == [0.1, 0.1, 0.2, 0.2]
    L = AIIBLoss("union_cont", steps=4)
    logits, tgt = torch.zeros(2, 1, 8, 8, 8), torch.zeros(2, 2, 8, 8, 8); tgt[:, :, 3:5, 3:5, 2:6] = 1
    assert torch.isfinite(L(logits, tgt)) and L.alpha == 0.1
    L.on_step(3); assert L.alpha == 0.2
    assert AIIBLoss("dice", 4)(logits, tgt) > 0.5
    with pytest.raises(ValueError, match="unknown loss"):
        AIIBLoss("bce", 4)


def test_fibrotic_phantom_adds_cysts_touching_airways():
    ph = airway_phantom(32, 7, seed=1)
    f = fibrotic_phantom(ph, 1.0, seed=1)
    assert np.array_equal(f["label"], ph["label"]) and f["n_cysts"] > 0
    assert not (f["cysts"] & (ph["label"] > 0)).any()
    assert (ndimage.binary_dilation(f["cysts"], iterations=2) & (ph["label"] > 0)).any()
    assert np.array_equal(fibrotic_phantom(ph, 1.0, seed=1)["ct"], f["ct"])
    with pytest.raises(ValueError, match="severity"):
        fibrotic_phantom(ph, -0.1)
    with pytest.raises(ValueError, match="airway_phantom"):
        fibrotic_phantom(dict(ct=ph["ct"]))


def test_wall_to_lumen_ratio_counts_the_wall():
    line = np.zeros((12, 12, 24), bool); line[6, 6, 2:22] = True
    ct = np.full(line.shape, -850.0)
    assert distal_wlr(line, ct) == 0
    for ax in (0, 1):
        for s in (-1, 1): ct[np.roll(line, s, axis=ax)] = -100.0
    assert distal_wlr(line, ct) == 4.0
    b = airway_biomarkers(Y, np.zeros(SH))
    assert b["volume"] == Y.sum() and b["branches"] == 3


def test_survival_simulator_and_cox():
    x = np.random.default_rng(0).standard_normal(1500)
    s = simulate_survival(dict(x=x), dict(x=float(np.log(2.0))), seed=1)
    assert s["time"].shape == (1500,) and set(np.unique(s["event"])) <= {0, 1} and 0 < s["event"].mean() < 1
    f = cox_univariable(x, s["time"], s["event"])
    assert f["lo"] < 2 < f["hi"] and f["p"] < 1e-10 and f["c_index"] > 0.6
    with pytest.raises(ValueError, match="constant"):
        cox_univariable(np.ones(10), s["time"][:10], s["event"][:10])
    with pytest.raises(ValueError, match="NaN"):
        cox_univariable(np.r_[np.nan, x[:9]], s["time"][:10], s["event"][:10])


def test_union_power_does_not_shift_the_global_rng():
    "The arms must draw the same crops: the union loss's random power comes from the loss's own generator."
    logits, tgt = torch.zeros(1, 1, 8, 8, 8), torch.zeros(1, 2, 8, 8, 8); tgt[:, :, 2:6, 4, 4] = 1
    torch.manual_seed(3); AIIBLoss("union", 4, seed=0)(logits, tgt); a = torch.rand(3)
    torch.manual_seed(3); AIIBLoss("dice", 4, seed=0)(logits, tgt); b = torch.rand(3)
    assert torch.equal(a, b)
    L1, L2 = AIIBLoss("union", 4, seed=1), AIIBLoss("union", 4, seed=1)
    assert L1(logits + 0.3, tgt) == L2(logits + 0.3, tgt)
