"Selective-scan equivalence (sequential / chunked / Triton interpreter), bad inputs, ARM causality."
import os
os.environ["TRITON_INTERPRET"] = "1"   # before anything imports triton: run the Triton kernel on the CPU

import math
import pytest
import torch

from medfound.vision.arm import (ARMEncoder, ARMPretrainer, MambaBlock, SCAN_IMPLS, cross_causal_mask, cluster_order,
                                 compare_scans, random_scan_inputs, scan_chunked, scan_sequential, scan_triton,
                                 selective_scan)

TOL = {torch.float32: 1e-5, torch.float64: 1e-10, torch.bfloat16: 1e-2}


@pytest.mark.parametrize("shape", [(1, 1, 3, 2), (2, 17, 6, 5), (2, 100, 16, 16), (1, 300, 4, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_chunked_matches_sequential(shape, dtype):
    for chunk in (None, 3, 64):
        d = compare_scans(lambda *a: scan_chunked(*a, chunk=chunk), scan_sequential, shape, dtype, seed=sum(shape))
        assert d["y"] < TOL[dtype] and d["grad"] < TOL[dtype], (chunk, d)


@pytest.mark.parametrize("shape", [(1, 1, 2, 1), (2, 6, 5, 3), (1, 11, 33, 2)])   # tiny: the interpreter is slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_triton_interpreter_matches_both(shape, dtype):
    for ref in (scan_sequential, scan_chunked):
        d = compare_scans(scan_triton, ref, shape, dtype, seed=len(shape))
        assert d["y"] < TOL[dtype] and d["grad"] < TOL[dtype], (ref.__name__, d)


def test_triton_partial_grads_and_no_D():
    u, dt, A, B, C, D = random_scan_inputs(2, 5, 4, 3, requires_grad=False)
    u.requires_grad_(); C.requires_grad_()
    y = scan_triton(u, dt, A, B, C, None); y.sum().backward()
    u2, C2 = u.detach().requires_grad_(), C.detach().requires_grad_()
    scan_sequential(u2, dt, A, B, C2, None).sum().backward()
    assert torch.allclose(u.grad, u2.grad, atol=1e-5) and torch.allclose(C.grad, C2.grad, atol=1e-5)


def test_closed_form_single_state():
    # one channel, one state, constant decay 1/2: h_t = h_{t-1}/2 + x_t*log2
    x = torch.tensor([[[1.0], [0.0], [2.0], [0.0]]])
    args = (x, torch.full_like(x, math.log(2)), -torch.ones(1, 1), torch.ones(1, 4, 1), torch.ones(1, 4, 1))
    l2 = math.log(2)
    want = torch.tensor([l2, l2 / 2, l2 / 4 + 2 * l2, l2 / 8 + l2])
    for impl in SCAN_IMPLS:
        assert torch.allclose(selective_scan(*args, impl=impl).flatten(), want, atol=1e-6), impl


def test_bad_inputs_are_clear():
    u, dt, A, B, C, D = random_scan_inputs(1, 4, 3, 2, requires_grad=False)
    with pytest.raises(ValueError, match="need u, delta"):
        scan_chunked(u, dt, A, B[:, :3], C, D)
    with pytest.raises(ValueError, match=r"A \(D, N\), got"):
        scan_sequential(u, dt, A[0], B, C, D)
    with pytest.raises(ValueError, match="unknown scan implementation"):
        selective_scan(u, dt, A, B, C, D, impl="cuda")
    with pytest.raises(ValueError, match="not divisible"):
        cluster_order(5, 2)


def test_mamba_block_causal_and_impls_agree():
    torch.manual_seed(0)
    blk = MambaBlock(8, d_state=4, scan_impl="sequential")
    z = torch.randn(2, 9, 8, requires_grad=True)
    blk(z)[:, 3].sum().backward()
    assert z.grad[:, 4:].abs().max() == 0 and z.grad[:, :4].abs().max() > 0
    ref = blk(z.detach())
    for impl in ("chunked", "triton"):
        blk.mixer.scan_impl = impl
        assert torch.allclose(blk(z.detach()), ref, atol=1e-5), impl


def test_cross_causal_mask_rules():
    n, cl = 16, 4
    m, S = cross_causal_mask(n, cl), n - cl
    src, tgt = torch.arange(S) // cl, torch.arange(cl, n) // cl
    assert m.shape == (S, S)
    for i in range(S):
        for j in range(S):
            assert m[i, j] == (src[j] < tgt[i])


def test_chunked_matches_mambapy_peer():
    mp = pytest.importorskip("mambapy.mamba")
    peer = lambda u, dt, A, B, C, D: mp.MambaBlock.selective_scan(None, u, dt, A, B, C, D)
    for shape in [(2, 64, 8, 4), (1, 300, 6, 5)]:
        d = compare_scans(scan_chunked, peer, shape)
        assert d["y"] < 1e-5 and d["grad"] < 1e-5, (shape, d)


def test_decoder_taps_and_grads():
    torch.manual_seed(0)
    arm = ARMPretrainer(ARMEncoder(img_size=16, patch=4, dim=16, depth=3, d_state=4, order_cluster=2, scan_impl="chunked"),
                        cluster=2, dec_dim=16, dec_depth=3)
    assert arm.taps == [1, 2, 3]
    arm(torch.randn(2, 1, 16, 16)).backward()
    missing = [n for n, p in arm.named_parameters() if p.grad is None]
    assert missing == ["encoder.norm.weight", "encoder.norm.bias"], missing   # the final norm is for fine-tuning


def test_arm_does_not_peek():
    torch.manual_seed(1)
    enc = ARMEncoder(img_size=16, patch=4, dim=16, depth=1, d_state=4, order_cluster=2, scan_impl="chunked")
    arm = ARMPretrainer(enc, cluster=2, dec_dim=16, dec_depth=1)
    x = torch.randn(2, 1, 16, 16)
    p = arm.predict(x)
    x2 = x.clone(); x2[:, :, 8:, :8] += 3.0        # cluster 2 (bottom left) in cluster order
    p2 = arm.predict(x2)
    assert torch.allclose(p2[:, :8], p[:, :8], atol=1e-5)      # predictions of clusters 1 and 2 unchanged
    assert not torch.allclose(p2[:, 8:], p[:, 8:], atol=1e-3)  # cluster 3 sees cluster 2
    with pytest.raises(ValueError, match="order"):
        ARMPretrainer(ARMEncoder(img_size=16, patch=4, dim=16, depth=1, order_cluster=1), cluster=2)


def test_finetune_early_stop_stops_and_restores_best():
    from medfound.vision.arm import finetune_early_stop
    from medfound.vision.common import accuracy
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(48, 1, 16, 16, generator=g), torch.randint(0, 10, (48,), generator=g)
    Xv, yv = torch.randn(24, 1, 16, 16, generator=g), torch.randint(0, 10, (24,), generator=g)
    enc = ARMEncoder(img_size=16, patch=4, dim=16, depth=1, d_state=4, scan_impl="sequential")
    m, info = finetune_early_stop(enc, 16, X, y, Xv, yv, eval_every=2, patience=2, max_steps=200, lr=1e-2)
    assert info["stopped_early"] and info["steps"] < 200
    assert info["best_val"] == max(a for _, a in info["curve"]) == accuracy(m, Xv, yv)
    with pytest.raises(ValueError, match="eval_every"):
        finetune_early_stop(enc, 16, X, y, Xv, yv, eval_every=5, max_steps=3)


def test_block_follows_official_arm_layout():
    from medfound.vision.arm import SwiGLU
    blk = MambaBlock(48, d_state=4)
    assert isinstance(blk.n1, torch.nn.LayerNorm) and isinstance(blk.n2, torch.nn.LayerNorm)
    assert blk.mixer.d_inner == 48                                   # expansion 1
    assert isinstance(blk.mlp, SwiGLU) and blk.mlp.w3.in_features == int(48 * 4 * 2 / 3) == 128
    assert MambaBlock(48, d_state=4, mlp_ratio=0).mlp is None
    x = torch.randn(2, 5, 48)
    a, b = blk.mlp.w12(x).chunk(2, -1)
    assert torch.allclose(blk.mlp(x), blk.mlp.w3(torch.nn.functional.silu(a) * b))


def test_encoder_positions_fixed_and_official_init():
    enc = ARMEncoder(img_size=16, patch=4, dim=16, depth=4, d_state=4)
    assert "pos" not in dict(enc.named_parameters()) and enc.pos.shape == (1, 16, 16)
    assert len({tuple(r.tolist()) for r in enc.pos[0]}) == 16           # every patch position distinct
    assert enc.pos.abs().max() <= 1.0                                   # sines and cosines
    for n, m in enc.blocks.named_modules():
        if isinstance(m, torch.nn.Linear) and m.bias is not None:
            assert (m.bias.abs().max() == 0) != n.endswith("dt_proj"), n
    bound = 1 / math.sqrt(enc.blocks[0].mixer.d_inner) / math.sqrt(4)  # default init bound over sqrt(depth)
    assert all(b.mixer.out_proj.weight.abs().max() <= bound + 1e-7 for b in enc.blocks)
    with pytest.raises(ValueError, match="divisible by 4"):
        ARMEncoder(img_size=16, patch=4, dim=18, depth=1)
    # decoder query positions: the sin-cos of the target patches, in cluster order
    arm = ARMPretrainer(ARMEncoder(img_size=16, patch=4, dim=16, depth=1, d_state=4), cluster=2, dec_dim=16)
    from medfound.vision.arm import sincos_positions
    assert torch.equal(arm.dec_pos, sincos_positions(4, 16)[:, cluster_order(4, 2)])
