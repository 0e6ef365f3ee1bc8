"Behaviour of the CRATE / CRATE-α blocks beyond the chapter's inline checks."
import pytest
import torch
import torch.nn.functional as F

from medfound.vision.crate_alpha import (LADDER, CrateConfig, CrateClassifier, CrateLayer, MSSA, SparseCoding,
                                         evaluate, n_params)


def _ista_einsum(x, D, eta, lam, steps, start_at_x):
    "Column-vector ISTA written with einsum (d = token dim, m = code dim), independent of the module's matmuls."
    a = x.clone() if start_at_x else torch.zeros(*x.shape[:-1], D.shape[1])
    for _ in range(steps):
        resid = torch.einsum("dm,bnm->bnd", D, a) - x                  # D a - x
        a = F.relu(a - eta * torch.einsum("dm,bnd->bnm", D, resid) - eta * lam)
    return a


@pytest.mark.parametrize("overcomplete", [False, True])
@pytest.mark.parametrize("dim,ratio,steps", [(8, 4, 2), (12, 2, 3), (16, 4, 1)])
def test_codes_match_einsum_reference(overcomplete, dim, ratio, steps):
    torch.manual_seed(dim + steps)
    cfg = CrateConfig(overcomplete=overcomplete, ratio=ratio, ista_steps=steps, eta=0.07, lam=0.2)
    sc = SparseCoding(dim, cfg)
    x = torch.randn(3, 5, dim, dtype=torch.float32)
    ref = _ista_einsum(x, sc.D.detach(), cfg.eta, cfg.lam, steps if overcomplete else 1, start_at_x=not overcomplete)
    torch.testing.assert_close(sc.codes(x), ref, atol=1e-5, rtol=1e-5)


def test_float64_and_gradcheck():
    torch.manual_seed(0)
    sc = SparseCoding(4, CrateConfig(overcomplete=True, decoupled=True, ratio=2)).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: sc(t), (x,))            # piecewise linear: exact away from kinks


def test_decoupled_and_residual_switches():
    torch.manual_seed(1)
    z = torch.randn(2, 6, 16)
    plain, dec, res = (CrateLayer(16, 2, c) for c in LADDER[1:])
    assert plain.ista.D_hat is None and dec.ista.D_hat is not None
    res.load_state_dict(dec.state_dict())                               # same weights, only the skip differs
    (z_dec, a_dec), (z_res, a_res) = dec(z), res(z)
    z_half = z + dec.attn(dec.ln1(z))
    torch.testing.assert_close(a_dec, a_res)
    torch.testing.assert_close(z_res - z_dec, z_half)


def test_parameter_counts_along_ladder():
    d, L = 24, 3
    counts = [n_params(CrateClassifier(c, dim=d, depth=L, heads=4)) for c in LADDER]
    assert [b - a for a, b in zip(counts, counts[1:])] == [L * 3 * d * d, L * 4 * d * d, 0]


def test_mssa_single_head_identity_projection_is_softmax_attention():
    att = MSSA(6, 1)
    with torch.no_grad():
        att.U.weight.copy_(torch.eye(6)); att.out.weight.copy_(torch.eye(6))
    z = torch.randn(1, 4, 6)
    expect = torch.softmax(z @ z.transpose(-1, -2) / 6 ** 0.5, -1) @ z
    torch.testing.assert_close(att(z), expect)


def test_bad_sizes_raise_clear_errors():
    with pytest.raises(ValueError, match="does not divide"):
        CrateClassifier(image_size=28, patch=5)
    with pytest.raises(ValueError, match="heads"):
        CrateClassifier(dim=30, heads=4)


def test_evaluate_counts_zero_codes():
    torch.manual_seed(2)
    net = CrateClassifier(LADDER[0], dim=8, depth=1, heads=2)
    x, y = torch.randn(6, 1, 28, 28), torch.zeros(6, dtype=torch.long)
    _, codes = net(x, return_codes=True)
    expect = (codes[0] == 0).double().mean().item()
    assert abs(evaluate(net, x, y, batch_size=4)["sparsity"] - expect) < 1e-12
