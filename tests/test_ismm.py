"""ismm: the PICCT frame (spacing, flips, islands), SDF samples, the Chamfer and EMD metrics against references,
the template network and its losses, template interaction and the coarse-mask generator (no atlas needed)."""
import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from medfound.seg.ismm import (physical_frame, to_frame, from_frame, frame_to_voxel, mask_sdf, shape_samples, sample_surface,
                               unit_sphere_normalise, chamfer, emd, mask_mesh, organ_phantom, ImplicitTemplate, Siren,
                               implicit_losses, train_template, fit_codes, decode_mesh, coarse_mask)


def _ball(shape, centre, radius, affine):
    w = np.indices(shape).reshape(3, -1).T @ affine[:3, :3].T + affine[:3, 3]
    return (np.linalg.norm(w - centre, axis=1) <= radius).reshape(shape)


A_FLIP = np.array([[-0.8, 0, 0, 30.0], [0, 0.8, 0, -20], [0, 0, 2.5, -40], [0, 0, 0, 1]])


def test_frame_undoes_spacing_flip_and_ignores_islands():
    m = _ball((64, 64, 24), np.array([5.0, 4.0, -10.0]), 12.0, A_FLIP)
    fr = physical_frame(m, A_FLIP)
    x = to_frame(np.argwhere(m), fr)
    assert np.allclose(x.mean(0), 0, atol=1e-9) and np.isclose(np.sqrt((np.linalg.norm(x, axis=1) ** 2).mean()), 1 / 3)
    assert np.allclose(fr["c"], [5, 4, -10], atol=0.5)
    v = np.random.default_rng(0).uniform(0, 20, (4, 3))
    assert np.allclose(frame_to_voxel(to_frame(v, fr), fr), v) and np.allclose(from_frame(to_frame(v, fr), fr), v @ fr["M"].T + fr["o"])
    isl = m.copy(); isl[0, 0, 0] = True
    assert np.allclose(physical_frame(isl, A_FLIP)["c"], fr["c"])            # a one-voxel island does not move the frame
    halves = m.copy(); halves[:, 30:33] = False                               # cut in two: both halves still count
    assert np.linalg.norm(physical_frame(halves, A_FLIP)["c"] - fr["c"]) < 1.5
    with pytest.raises(ValueError): physical_frame(np.zeros((4, 4, 4)), A_FLIP)
    with pytest.raises(ValueError): physical_frame(m, np.zeros((4, 4)))


def test_sdf_and_samples_on_a_flipped_anisotropic_ball():
    m = _ball((64, 64, 24), np.array([5.0, 4.0, -10.0]), 12.0, A_FLIP)
    s = shape_samples(m, A_FLIP, n_surface=1500, n_volume=1500)
    r = 12.0 / s["frame"]["s"]
    rad = np.linalg.norm(s["surface"], axis=1)
    assert abs(np.median(rad) - r) < 0.03
    assert np.median(np.sum(s["normals"] * s["surface"] / rad[:, None], 1)) > 0.97     # outward despite the flip
    err = np.abs(s["sdf"] - (np.linalg.norm(s["points"], axis=1) - r)) * s["frame"]["s"]
    assert np.median(err) < 1.0
    d = mask_sdf(np.pad(np.ones((3, 3, 3), bool), 2), (2.0, 1.0, 1.0))
    assert d[3, 3, 3] < 0 < d[0, 0, 0]
    with pytest.raises(ValueError): mask_sdf(np.zeros((3, 3, 3)), (1, 1, 1))


def test_metrics_against_references():
    rng = np.random.default_rng(3)
    P, Q = rng.normal(size=(200, 3)), rng.normal(size=(150, 3)) * [1, 2, 0.5]
    assert np.isclose(np.linalg.norm(unit_sphere_normalise(P), axis=1).max(), 0.5)
    Pn, Qn = unit_sphere_normalise(P), unit_sphere_normalise(Q)
    D2 = ((Pn[:, None] - Qn[None]) ** 2).sum(-1)
    assert np.isclose(chamfer(P, Q, n=None), D2.min(1).mean() + D2.min(0).mean(), rtol=1e-12)
    assert chamfer(P, 4 * P - 1, n=None) < 1e-25 and np.isclose(chamfer(P, Q, n=None), chamfer(Q, P, n=None))
    Pe, Qe = rng.normal(size=(80, 3)), rng.normal(size=(80, 3)) + [0.7, 0, 0]
    C = np.linalg.norm(unit_sphere_normalise(Pe)[:, None] - unit_sphere_normalise(Qe)[None], axis=-1)
    i, j = linear_sum_assignment(C)
    assert abs(emd(Pe, Qe, n=80) - C[i, j].mean()) < 1e-9
    assert emd(P, P, n=200) < 1e-12 and emd(P, Q, n=100) > 0
    with pytest.raises(ValueError): unit_sphere_normalise(np.ones((5, 3)))


def test_organ_world_coordinates_agree_across_grids():
    A1 = np.array([[2.0, 0, 0, -80], [0, 2, 0, -70], [0, 0, 2, -50], [0, 0, 0, 1]])
    A2 = np.array([[-1.5, 0, 0, 85], [0, 1.5, 0, -72], [0, 0, 4, -52], [0, 0, 0, 1]])
    o1, o2 = organ_phantom(A1, (83, 73, 53)), organ_phantom(A2, (112, 96, 26))
    p = [sample_surface(*mask_mesh(o, A), 4000, np.random.default_rng(0)) for o, A in ((o1, A1), (o2, A2))]
    q = [sample_surface(*mask_mesh(o, np.eye(4)), 4000, np.random.default_rng(0)) for o in (o1, o2)]
    assert chamfer(*p, n=4000) * 10 < chamfer(*q, n=4000)


def test_template_losses_and_interaction():
    torch.manual_seed(0)
    net = ImplicitTemplate(latent=4, hidden=16, layers=2)
    x, z = torch.rand(2, 30, 3) * 2 - 1, torch.zeros(2, 4)
    sdf, dx, ds = net(x, z)
    assert sdf.shape == (2, 30) and dx.shape == (2, 30, 3)
    with pytest.raises(ValueError): net(x, torch.zeros(2, 5))
    with pytest.raises(ValueError): Siren(3, 0, 1)
    L = implicit_losses(net, z.requires_grad_(), x[:, :10], torch.nn.functional.normalize(x[:, :10], dim=-1), x[:, 10:], torch.zeros(2, 20))
    L["total"].backward()
    assert z.grad is not None and all(torch.isfinite(v) for v in L.values())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())    # second-order terms reach the weights
    A = np.eye(4)
    balls = [shape_samples(_ball((20, 20, 20), np.array([10.0, 10, 10]), r, A), A, n_surface=200, n_volume=200, seed=k)
             for k, r in enumerate((5.0, 8.0))]
    model, terms = train_template(balls, latent=4, hidden=16, layers=2, steps=25, batch=2, points=48, lr=1e-3, progress=False)
    assert terms[-1]["total"] < terms[0]["total"]
    w_before = [p.detach().clone() for p in model.net.parameters()]
    zf, hist = fit_codes(model.net, balls[:1], steps=5, points=48)
    assert zf.shape == (1, 4) and all(torch.equal(a, b) for a, b in zip(w_before, model.net.parameters()))   # networks frozen
    assert all(p.requires_grad for p in model.net.parameters())                                             # and released
    v, f = decode_mesh(model.net, zf[0], res=16)
    assert v is None or (v.shape[1] == 3 and np.abs(v).max() <= 1 + 1e-6)


def test_coarse_mask_damages_but_keeps_the_shape():
    m = _ball((40, 40, 40), np.array([20.0, 20, 20]), 15.0, np.eye(4))
    c = coarse_mask(m, np.random.default_rng(3), cavities=2, bites=1, islands=2)
    assert c.shape == m.shape and (c & ~m).any() and (m & ~c).any()
    dice = 2 * (c & m).sum() / (c.sum() + m.sum())
    assert 0.6 < dice < 0.999
    assert np.array_equal(c, coarse_mask(m, np.random.default_rng(3), cavities=2, bites=1, islands=2))   # seeded
    with pytest.raises(ValueError): coarse_mask(np.zeros((5, 5, 5)), np.random.default_rng(0))
