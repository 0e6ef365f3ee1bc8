"Behaviour of the Recap-DataComp pieces: noise procedure, captioner masks, decoding, mixing."
import numpy as np
import pytest
import torch

from medfound.vl.recap import (GENERIC_ALT, Captioner, MixedCaptions, add_eos, caption_loss, corrupt_captions,
                               greedy_captions, token_f1)

CAPS = [f"A {c} {a}." for c in ("red", "blue", "green") for a in ("gnu", "cat", "bus", "kite")] * 10


def test_corruption_is_seeded_and_typed():
    a, ka = corrupt_captions(CAPS, seed=0)
    b, kb = corrupt_captions(CAPS, seed=0)
    assert a == b and ka == kb
    assert set(ka) <= {"missing", "wrong", "short", "kept"}
    assert all(n in GENERIC_ALT for n, k in zip(a, ka) if k == "missing")


def test_corruption_rates_checked():
    with pytest.raises(ValueError):
        corrupt_captions(CAPS, seed=0, missing=0.6, wrong=0.6)
    n, k = corrupt_captions(CAPS, seed=1, missing=0.0, wrong=0.0, short=0.0)
    assert n == CAPS and set(k) == {"kept"}


def test_token_f1():
    assert token_f1("A blue gnu.", "a blue gnu") == 1.0
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


def test_captioner_is_causal_and_decodes():
    torch.manual_seed(0)
    m = Captioner(vocab_size=10, width=16, layers=1, img_width=8, max_len=6, dropout=0.0).eval()
    x = torch.randn(3, 3, 32, 32)
    ids = torch.tensor([[2, 4, 5, 6, 0, 0], [2, 7, 0, 0, 0, 0], [2, 4, 4, 4, 4, 4]])
    out = m(x, ids)
    ids2 = ids.clone(); ids2[:, 4:] = 9
    assert torch.allclose(m(x, ids2)[:, :4], out[:, :4], atol=1e-5)
    assert add_eos(ids, 10)[2, -1] == 10 and add_eos(ids, 10)[1, 2] == 10
    assert torch.isfinite(caption_loss(m, x, ids))
    g = greedy_captions(m, x, batch=2)
    assert g.shape == (3, 6) and (g[:, 0] == 2).all() and (g != 10).all()


def test_mixed_captions_bounds():
    imgs = np.zeros((4, 8, 8, 3), np.uint8)
    o, r = torch.zeros(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long)
    assert MixedCaptions(imgs, o, r, 1.0)[0][1].sum() == 3 and MixedCaptions(imgs, o, r, 0.0)[0][1].sum() == 0
    with pytest.raises(ValueError):
        MixedCaptions(imgs, o, r, -0.1)
    with pytest.raises(ValueError):
        MixedCaptions(imgs, o[:3], r, 0.5)


def test_caption_stats_and_quadratic_optimum():
    from medfound.vl.recap import caption_stats, quadratic_optimum
    st = caption_stats(["A blue gnu.", "icon", "a red bus on road"])
    assert st["mean_words"] == 3.0 and st["vocabulary"] == 8 and abs(st["generic_share"] - 1 / 3) < 1e-9
    grid = [0.0, 0.2, 0.5, 0.8, 1.0]
    assert abs(quadratic_optimum(grid, [1 - (p - 0.8) ** 2 for p in grid]) - 0.8) < 1e-9
    assert quadratic_optimum(grid, [-p for p in grid]) == 0.0          # monotone: the better end
    assert quadratic_optimum(grid, [(p - 0.3) ** 2 for p in grid]) == 1.0   # convex: the better end
