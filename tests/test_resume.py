"Interrupting ATM'22 training and resuming gives the same weights and the same final metrics."
import numpy as np
import torch
import pytest
from medfound.train import fit
from medfound.airways.atm22 import airway_phantom, CropDataset, make_unet, make_loss, predict_volume, atm_metrics, parse_tree


def _train(ckpt_dir=None, interrupt_at=None):
    ph = airway_phantom(24, 6, seed=3)
    ds = CropDataset([ph["ct"]], [ph["label"]], crop=16)
    torch.manual_seed(0)
    model = make_unet((4, 8))
    loss = make_loss("cldice", 2)
    def stop(step, m):
        if step == interrupt_at: raise KeyboardInterrupt
    out = fit(model, lambda m, b: loss(m(b[0]), b[1]), ds, steps=6, batch_size=2, lr=3e-3, seed=5,
              ckpt_dir=ckpt_dir, ckpt_every=2, on_step=stop if interrupt_at else None, progress=False)
    prob = predict_volume(out["model"], ph["ct"], roi=16)
    return out, atm_metrics(prob > 0.5, parsed=parse_tree(ph["label"])), prob


def test_resume_after_interrupt_matches(tmp_path):
    ref, ref_metrics, ref_prob = _train()
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, interrupt_at=3)          # between two periodic checkpoints: saved on interrupt
    res, res_metrics, res_prob = _train(tmp_path)
    assert res["resumed_from"] == 3
    assert res["history"] == ref["history"]
    for a, b in zip(ref["model"].state_dict().values(), res["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert np.array_equal(ref_prob, res_prob) and res_metrics == ref_metrics


def test_finished_run_is_not_retrained(tmp_path):
    first, m1, _ = _train(tmp_path)
    again, m2, _ = _train(tmp_path)
    assert again["resumed_from"] == 6 and again["history"] == first["history"] and m1 == m2
