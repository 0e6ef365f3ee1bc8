"""atm22: the trivial references, the threshold sweep and the training-start fixes used by the chapter's experiment."""
import numpy as np
import torch
from medfound.airways.atm22 import (airway_phantom, parse_tree, atm_metrics, threshold_segmentation, body_mask,
                                    threshold_sweep, at_matched, make_unet, make_loss, mean_metrics)


def test_threshold_reference_stays_in_body_and_finds_the_trachea():
    ph = airway_phantom(64, 8, seed=2)
    seg = threshold_segmentation(ph["ct"], -900)
    assert not (seg & ~body_mask(ph["ct"])).any()          # the air outside the patient is not an airway
    m = atm_metrics(seg, ph["label"])
    assert m["precision"] > 0.5 and 0 < m["TD"] < 1        # dark thick airways found, faint distal ones missed


def test_sweep_and_matched_reading():
    ph = airway_phantom(32, 6, seed=1); p = parse_tree(ph["label"])
    prob = np.where(ph["label"] > 0, 0.7, 0.3).astype(np.float32)
    sw = threshold_sweep([prob], [p], (0.2, 0.5, 0.8))
    assert np.isclose(sw["TD"][1], 1) and np.isclose(sw["precision"][1], 1) and sw["TD"][2] == 0
    assert sw["precision"][0] < 0.1                          # everything: precision = airway share
    assert mean_metrics([prob > 0.5], [p])["score"] == sw["score"][1]
    assert at_matched([0.1, 0.9], [0.0, 0.8], 0.5) == 0.4 and np.isnan(at_matched([0.1, 0.9], [0, 1], 0.95))
    assert np.isnan(at_matched([0.1, 0.9], [0, 1], float("nan")))


def test_prior_bias_and_batch_dice():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 16, 16, 16)
    assert abs(make_unet((4, 8), prior=0.02)(x).mean().item() - np.log(0.02 / 0.98)) < 1.5
    y = torch.zeros(2, 2, 16, 16, 16); y[0, :, 4:8, 4:8, 4:8] = 1    # second crop has no airway
    logits = torch.randn(2, 1, 16, 16, 16)
    # batch Dice is one Dice over the whole batch: the same as per-crop Dice of the crops laid side by side
    side = lambda t: torch.cat([t[0:1], t[1:2]], dim=2)
    assert torch.isclose(make_loss("dice", batch_dice=True)(logits, y), make_loss("dice")(side(logits), side(y)), atol=1e-5)
    try: make_unet((4, 8), prior=1.5); raise AssertionError
    except ValueError: pass


def test_official_refinement_on_hand_made_trees():
    from medfound.airways.atm22 import refine_parsing, branch_tree
    chain = np.zeros((1, 1, 12), np.int32); chain[0, 0, :6] = 1; chain[0, 0, 6:9] = 2; chain[0, 0, 9:] = 3
    assert refine_parsing(chain, 3)[1] == 1                              # only children merge into their parent
    fork = np.zeros((3, 9, 1), np.int32); fork[:, :4] = 1; fork[0, 4:] = 2; fork[2, 4:] = 3
    r, n = refine_parsing(fork, 3); assert n == 3 and np.array_equal(r, fork)   # a true bifurcation is left alone
    shared = np.zeros((3, 12, 1), np.int32); shared[:, :4] = 1; shared[0, 4:8] = 2; shared[2, 4:8] = 3; shared[:, 8:10] = 4
    assert branch_tree(shared, 4)["parents"][4] == {2, 3}
    assert refine_parsing(shared, 4)[1] == 1
    # a trachea with two real children, one of which has a spurious only-child piece: 4 -> 3, leaving 3 branches
    t = np.zeros((3, 14, 1), np.int32); t[:, :4] = 1; t[0, 4:9] = 2; t[2, 4:9] = 3; t[2, 9:14] = 4
    r, n = refine_parsing(t, 4); assert n == 3 and (r[t == 4] == r[t == 3][0]).all()


def test_resampling_keeps_physical_size():
    import tempfile
    from pathlib import Path
    from medfound.data import save_nifti
    from medfound.airways.atm22 import load_atm_case, resample_case, to_cube
    ph = airway_phantom(24, 5, seed=1)
    with tempfile.TemporaryDirectory() as d:
        save_nifti(ph["ct"], f"{d}/a.nii.gz", spacing=(0.5, 1.0, 2.0)); save_nifti(ph["label"], f"{d}/b.nii.gz", spacing=(0.5, 1.0, 2.0))
        case = load_atm_case(f"{d}/a.nii.gz", f"{d}/b.nii.gz")
    ct, lab = resample_case(case["ct"], case["label"], case["affine"], spacing=(1.0, 1.0, 1.0))
    assert abs(ct.shape[0] - 48) <= 1 and ct.shape[1] == 24 and abs(ct.shape[2] - 12) <= 1   # I, P, L axes
    assert abs(int(lab.sum()) - int(ph["label"].sum())) < 0.25 * ph["label"].sum()
    c, l = to_cube(ct, lab, 32); assert c.shape == (32, 32, 32) and c[-1, -1, -1] == -1000.0
