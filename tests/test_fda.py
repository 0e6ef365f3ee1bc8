"""fda: scoring with input checks, the COVID-19-like corruption of the ATM'22 phantom, the truncated signed distance
map, the dual-stream network's wiring and the three training objectives, on small inputs."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from medfound.airways.atm22 import METRIC_KEYS, airway_phantom, make_loss, make_unet
from medfound.airways.fda import (fda_reference, fda_metrics, mean_fda, covid_phantom, signed_distance_map, DualStreamNet,
                                  SDMCropDataset, PairedCrops, dual_stream_loss, joint_loss)


from shapes import TREE as Y, TREE_SHAPE as SH, tube as _tube


@pytest.fixture(scope="module")
def phantom():
    return airway_phantom(32, 6, seed=5)


def test_metrics_perfect_and_cut():
    ref = fda_reference(Y)
    assert all(v == 1 for v in fda_metrics(Y, ref=ref).values())
    cut = fda_metrics(Y & (np.indices(SH)[0] < 27), ref=ref)
    assert np.isclose(cut["BD"], 1 / 3) and cut["precision"] == 1 and 0 < cut["TD"] < 1
    assert mean_fda([np.zeros(SH, bool), Y], [ref, ref])["BD"] == 0.5


@pytest.mark.parametrize("pred,gt,words", [(np.zeros(SH, bool), Y, "empty"), (Y[:-1], Y, "shape"), (Y * 0.9, Y, "binary"),
                                           (Y, Y * 2, "binary"), (Y, np.zeros(SH), "label is empty"), (Y, Y[..., 0], "3D")])
def test_bad_inputs_name_the_problem(pred, gt, words):
    with pytest.raises(ValueError, match=words):
        fda_metrics(pred, gt)


def test_covid_phantom_changes_ct_not_label(phantom):
    same = covid_phantom(phantom, 0.0, seed=5, extra_noise_hu=0)
    assert np.array_equal(same["ct"], phantom["ct"])
    sick = covid_phantom(phantom, 1.0, seed=5)
    assert np.array_equal(sick["label"], phantom["label"]) and sick["ggo"].max() > 0.5
    opaque = sick["ggo"] > 0.5
    assert sick["ct"][opaque].mean() > phantom["ct"][opaque].mean() + 150
    assert (sick["consolidation"] <= sick["ggo"] + 1e-6).all()
    with pytest.raises(ValueError, match="severity"): covid_phantom(phantom, -0.1)
    with pytest.raises(ValueError, match="lacks"): covid_phantom({"ct": phantom["ct"]})


def test_sdm_against_brute_force():
    lab = ndimage.binary_dilation(np.random.default_rng(1).random((8, 9, 7)) < 0.04)
    grid = np.argwhere(np.ones(lab.shape))
    d_to = lambda m: np.linalg.norm(grid[:, None] - np.argwhere(m)[None], axis=-1).min(1).reshape(lab.shape)
    brute = np.where(lab, -np.minimum(d_to(~lab), 3.0), np.minimum(d_to(lab), 3.0)) / 3.0
    assert np.abs(signed_distance_map(lab, tau=3.0) - brute).max() < 1e-6
    assert (signed_distance_map(np.zeros((3, 3, 3))) == 1).all()
    with pytest.raises(ValueError, match="binary"): signed_distance_map(lab * 0.5)
    with pytest.raises(ValueError, match="tau"): signed_distance_map(lab, tau=0)


def test_dual_stream_wiring():
    torch.manual_seed(0)
    net = DualStreamNet((4, 8, 16), prior=0.02)
    x = torch.randn(2, 1, 16, 16, 16)
    logit_c, sdm = net.clean(x)
    assert net(x).shape == logit_c.shape == sdm.shape == (2, 1, 16, 16, 16)
    logit_c.sum().backward()                                    # the clean stream never reads the noisy encoder
    assert all(p.grad is None or p.grad.abs().max() == 0 for p in net.enc_noisy.parameters())
    with pytest.raises(ValueError, match="divisible"): net(torch.randn(1, 1, 18, 16, 16))
    with pytest.raises(ValueError, match="prior"): DualStreamNet((4, 8), prior=1.5)


def test_paired_crops_and_losses(phantom):
    clean = SDMCropDataset([phantom["ct"]] * 2, [phantom["label"]] * 2, crop=16)
    noisy = SDMCropDataset([covid_phantom(phantom, 1.0, seed=5)["ct"]], [phantom["label"]], crop=16)
    pair = PairedCrops(clean, noisy)
    item = pair[1]
    assert len(pair) == 2 and [tuple(t.shape) for t in item] == [(1, 16, 16, 16), (3, 16, 16, 16)] * 2
    assert torch.equal(item[1][2] < 0, item[1][0] > 0)
    batch = [torch.stack(z) for z in zip(pair[0], pair[1])]
    seg = make_loss("dicece", batch_dice=True)
    net = DualStreamNet((4, 8, 16), prior=0.02)
    loss = dual_stream_loss(net, batch, seg)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in net.parameters())
    assert torch.isfinite(joint_loss(make_unet((4, 8, 16)), batch, seg))
    with pytest.raises(ValueError, match="crop"):
        PairedCrops(clean, SDMCropDataset([phantom["ct"]], [phantom["label"]], crop=8))
