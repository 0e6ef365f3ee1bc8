"""universal33: the marginal and exclusion losses against hand computations, the cross-patch wiring, crops,
tiled prediction and vertebra identification."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from medfound.seg.universal33 import (merge_unlabelled, marginal_ce, marginal_dice, exclusion_loss, partial_label_loss,
                                      CrossPatchUNet, TallCrops, centre_of, predict_slice, identify, id_accuracy,
                                      spine_slice, LOSS_MODES)
from medfound.seg.ctspine1k import ct_norm_params


def test_marginal_ce_by_hand():
    # two voxels, 4 classes; the dataset labels classes 0 and 2 (1 and 3 are merged into background)
    lg = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 3.0, -2.0, 0.5]]).T.reshape(1, 4, 2, 1)
    y = torch.tensor([[[0], [2]]])
    lab = torch.tensor([[True, False, True, False]])
    p = torch.softmax(lg, 1)[0, :, :, 0].numpy()                         # (4, 2)
    hand = -(np.log(p[0, 0] + p[1, 0] + p[3, 0]) + np.log(p[2, 1])) / 2
    assert marginal_ce(lg, y, lab).item() == pytest.approx(hand, abs=1e-6)
    q = merge_unlabelled(torch.softmax(lg, 1), lab)
    assert torch.allclose(q.sum(1), torch.ones(1, 2, 1)) and torch.all(q[:, [1, 3]] == 0)


def test_marginal_equals_plain_losses_when_all_labelled():
    from monai.losses import DiceLoss
    g = torch.Generator().manual_seed(1)
    L = torch.randn(2, 5, 6, 7, generator=g) * 2; T = torch.randint(0, 5, (2, 6, 7), generator=g)
    every = torch.ones(2, 5, dtype=torch.bool)
    assert torch.allclose(marginal_ce(L, T, every), F.cross_entropy(L, T), atol=1e-6)
    ref = DiceLoss(to_onehot_y=True, softmax=True, include_background=False)(L, T[:, None])
    assert torch.allclose(marginal_dice(L, T, every), ref, atol=1e-6)
    assert exclusion_loss(L, T, every).item() == 0
    assert torch.allclose(partial_label_loss(L, T, every, "marginal+exclusion"), partial_label_loss(L, T, every, "naive"))


def test_exclusion_penalises_unlabelled_class_on_labelled_voxels():
    y = torch.zeros(1, 4, 4, dtype=torch.long); y[0, :2] = 1                # class 1 labelled on the top half
    lab = torch.tensor([[True, True, False]])
    bad = torch.zeros(1, 3, 4, 4); bad[:, 2, :2] = 10.0                    # class 2 predicted on class 1's voxels
    good = torch.zeros(1, 3, 4, 4); good[:, 1, :2] = 10.0
    assert exclusion_loss(bad, y, lab) > 0.8 and exclusion_loss(good, y, lab) < 1e-3
    # the marginal loss does not mind class 2 below (it is merged into background there)
    good2 = good.clone(); good2[:, 2, 2:] = 10.0
    assert marginal_ce(good2, y, lab) < 1e-3 and F.cross_entropy(good2, y) > 1


def test_loss_input_errors():
    L = torch.randn(1, 3, 4, 4); y = torch.full((1, 4, 4), 2)
    with pytest.raises(ValueError, match="does not label"):
        marginal_ce(L, y, torch.tensor([[True, True, False]]))
    with pytest.raises(ValueError, match="mode"):
        partial_label_loss(L, y, torch.ones(1, 3, dtype=torch.bool), "halfway")
    with pytest.raises(ValueError, match="labelled"):
        merge_unlabelled(torch.softmax(L, 1), torch.ones(1, 4, dtype=torch.bool))
    assert set(LOSS_MODES) == {"naive", "marginal", "marginal+exclusion"}


def test_cross_patch_wiring():
    torch.manual_seed(0)
    m = CrossPatchUNet(5, patch=(8, 8), filters=(4, 8), context=1, layers=1, heads=2).eval()
    x = torch.randn(3, 1, 24, 8)
    y = m(x)
    assert y.shape == (3, 5, 8, 8)
    x2 = x.clone(); x2[:, :, :8] = torch.randn(3, 1, 8, 8)                 # other patch above
    with torch.no_grad(): assert (m(x2) - y).abs().max() > 1e-5
    x3 = x.clone(); x3[1] = torch.randn(1, 24, 8)                           # samples stay independent in eval mode
    with torch.no_grad(): assert torch.allclose(m(x3)[0], y[0], atol=1e-5)
    m0 = CrossPatchUNet(5, patch=(8, 8), filters=(4, 8), context=0, layers=1, heads=2)
    assert m0(x[:, :, 8:16]).shape == (3, 5, 8, 8)
    with pytest.raises(ValueError, match="multiple"):
        CrossPatchUNet(5, patch=(9, 8), filters=(4, 8))
    with pytest.raises(ValueError, match="stacked"):
        m(x[:, :, :16])


def test_crops_prediction_and_identification():
    sl = [spine_slice("COVID", seed=s, length=40, width=16) for s in (3, 4)]
    assert sl[0]["ct"].shape == (40, 16)
    nrm = ct_norm_params([s["ct"] for s in sl], [s["label"] for s in sl])
    ds = TallCrops([s["ct"] for s in sl], [s["label"] for s in sl], (8, 16), nrm, context=1, n_classes=26)
    torch.manual_seed(2); x, y, lab = ds[1]; torch.manual_seed(2); z = int(torch.randint(0, 40 - 8 + 1, ()))
    assert x.shape == (1, 24, 16) and torch.equal(y, torch.as_tensor(sl[1]["label"][z:z + 8].astype(np.int64)))
    assert centre_of(x[None], 8, 1).shape == (1, 1, 8, 16)
    m = CrossPatchUNet(26, patch=(8, 16), filters=(4, 8), context=1, layers=1, heads=2)
    pr = predict_slice(m, sl[0]["ct"], nrm)
    assert pr.shape == (40, 16) and pr.dtype == np.uint8
    g = sl[0]["label"]
    assert id_accuracy([g], [g]) == 1.0
    wrong = np.where(g > 0, 5, 0).astype(np.uint8)                          # every vertebra called C5
    assert id_accuracy([wrong], [g]) == 0.0 and set(identify(wrong, g).values()) == {5}
    with pytest.raises(ValueError, match="differ"):
        identify(g[:10], g)
