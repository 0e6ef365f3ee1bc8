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
