"""ctspine1k: the loader on files written in the released layout, the two Dice rules, the spine phantom's
conventions and the nnU-Net topology rules."""
import numpy as np
import pytest
import torch
from medfound.data import DataError, save_nifti
from medfound.seg.ctspine1k import (VERTEBRAE, vertebra_name, vertebra_dice, spine_dice, find_ctspine_cases,
                                    load_ctspine_case, read_split, spine_geometry, spine_phantom, omit_partial,
                                    nnunet_topology, make_dynunet, ct_norm_params, SpinePatches, predict_labels, SITES)


def _write_case(root, subset, name, ct, lab, sp=(8.0, 8.0, 8.0)):
    (root / "images" / subset).mkdir(parents=True, exist_ok=True); (root / "labels" / subset).mkdir(parents=True, exist_ok=True)
    save_nifti(ct, root / "images" / subset / f"{name}.nii.gz", spacing=sp)
    save_nifti(lab, root / "labels" / subset / f"{name}_seg.nii.gz", spacing=sp)


def test_loader_pairs_and_checks(tmp_path):
    a = spine_phantom((24, 12, 12), 8.0, "COLONOG", seed=4)
    _write_case(tmp_path, "COLONOG", "1.3.6.1.4.1.9328.50.4.0007", a["ct"], a["label"])
    _write_case(tmp_path, "MSD-T10", "liver_12", a["ct"], a["label"], sp=(8.0, 8.0, 4.0))
    cases = find_ctspine_cases(tmp_path)
    assert [c["name"] for c in cases] == ["1.3.6.1.4.1.9328.50.4.0007", "liver_12"]
    c = load_ctspine_case(cases[1])
    assert c["label"].dtype == np.uint8 and np.array_equal(c["label"], a["label"]) and c["spacing"] == (8.0, 8.0, 4.0)
    save_nifti(a["label"], tmp_path / "labels" / "MSD-T10" / "liver_12_seg.nii.gz", spacing=(8.0, 8.0, 8.0))
    with pytest.raises(DataError, match="spacing"):        # label spacing differs from the image's
        load_ctspine_case(cases[1])
    (tmp_path / "split.txt").write_text("trainset:\nliver_12.nii.gz\ntest_private:\n")
    assert read_split(tmp_path / "split.txt") == {"trainset": ["liver_12"], "test_private": []}
    (tmp_path / "bad.txt").write_text("liver_12.nii.gz\n")
    with pytest.raises(DataError, match="before any section"):
        read_split(tmp_path / "bad.txt")
    with pytest.raises(DataError, match="no label files"):
        find_ctspine_cases(tmp_path / "images")


def test_dice_rules_and_aggregation():
    gt = np.zeros((6, 3, 3), np.uint8); gt[:3] = 20; gt[3:] = 21           # L1 over L2
    pred = gt.copy(); pred[:1] = 19                                          # top third of L1 called T12
    skip, pen = vertebra_dice(pred, gt, "skip"), vertebra_dice(pred, gt, "penalize")
    assert np.isclose(skip[19], 2 * 18 / (18 + 27)) and skip[20] == 1 and np.isnan(skip[18]) and pen[18] == 0
    assert np.isnan(pen[0])                                                  # C1 absent from both: not counted
    s = spine_dice([pred, gt], [gt, gt], "penalize")
    assert np.isclose(s["per_label"][19], (2 * 18 / 45 + 1) / 2) and s["per_label"][18] == 0
    assert np.isclose(s["mean"], np.mean([0, (2 * 18 / 45 + 1) / 2, 1]))
    assert np.isclose(spine_dice([np.zeros_like(gt)], [gt])["mean"], 0)
    with pytest.raises(ValueError, match="absent"):
        vertebra_dice(gt, gt, "ignore")


def test_phantom_conventions():
    assert len(VERTEBRAE) == 25 and vertebra_name(19) == "T12" and vertebra_name(25) == "L6"
    for seed in range(3):
        v = spine_geometry(seed)
        assert [x["label"] for x in v] == list(range(1, len(v) + 1))
    for site in SITES:
        p = spine_phantom((40, 16, 16), 6.0, site, seed=11)
        assert p["ct"].shape == p["label"].shape == (40, 16, 16) and np.isfinite(p["ct"]).all()
        assert set(np.unique(p["label"])) - {0} == set(p["visible"])
    p = spine_phantom((40, 16, 16), 6.0, "COLONOG", seed=11)
    bone = p["ct"][p["label"] > 0].mean(); soft = p["ct"][(p["label"] == 0) & (p["ct"] > -500)].mean()
    assert bone > soft + 150                                                 # vertebrae brighter than the soft tissue
    om = omit_partial(p["label"], p["visible"], 0.9)
    assert (om[(om > 0)] == p["label"][om > 0]).all() and all(p["visible"][k] >= 0.9 for k in np.unique(om) if k)
    # a field of view that starts inside a vertebra cuts it: visible fraction below 1
    g = {x["label"]: x for x in spine_geometry(11)}
    cut = spine_phantom((40, 16, 16), 6.0, "COLONOG", seed=11, z_start=g[20]["z0"] + 0.5 * g[20]["height"])
    assert cut["visible"][20] < 0.9 and 20 not in np.unique(omit_partial(cut["label"], cut["visible"]))


def test_topology_rules_and_network():
    t = nnunet_topology((20, 160, 160), (5.0, 1.0, 1.0))
    assert t["kernels"][0] == [1, 3, 3] and t["strides"][1] == [1, 2, 2]    # thick slices: z neither pooled nor convolved first
    assert all(p % s == 0 for p, s in zip(t["patch"], np.prod(np.array(t["strides"]), 0)))
    with pytest.raises(ValueError):
        nnunet_topology((10, 10), (1, 1))
    topo = nnunet_topology((24, 12, 12), (8, 8, 8))
    net = make_dynunet(topo, filters=(4, 8, 16))
    p = spine_phantom((36, 12, 12), 8.0, "VerSe", seed=2)
    norm = ct_norm_params([p["ct"]], [p["label"]])
    x, y = SpinePatches([p["ct"]], [p["label"]], topo["patch"], norm)[0]
    assert x.shape == (1, 24, 12, 12) and y.shape == (1, 24, 12, 12)
    assert net(x[None]).shape == (1, 26, 24, 12, 12)
    lab = predict_labels(net, p["ct"], topo["patch"], norm)
    assert lab.shape == (36, 12, 12) and lab.dtype == np.uint8
