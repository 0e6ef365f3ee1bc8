"Grouped-aggregation contrastive loss (M2-Encoder): multi-process equivalence, bytes counted, bad inputs."
import math
import pytest
import torch
import torch.nn.functional as F
from medfound.vl import m2_encoder as M
from medfound.vl.common import clip_loss


def test_distributed_matches_single_process():
    world, b, d = 4, 3, 5
    res = M.launch(M.check_worker, world, b, d)
    assert set(res[0]) == {"1", "2", "4"}
    for k, r0 in res[0].items():
        assert r0["loss_err"] < 1e-5 and r0["grad_err"] < 1e-5
        for r in res:                                    # every rank: elements sent and logits shape
            assert r[k]["sent_fwd"] == r[k]["sent_bwd"] == 2 * (int(k) - 1) * b * d
            assert r[k]["logits_shape"] == [b, int(k) * b]


def test_simulation_is_mean_of_group_losses():
    g = torch.Generator().manual_seed(1)
    U, V = (F.normalize(torch.randn(24, 6, generator=g), dim=-1) for _ in range(2))
    assert torch.allclose(M.simulated_grouped_loss(U, V, 5.0, 6, 6), clip_loss(U, V, 5.0), atol=1e-6)
    ref = torch.stack([clip_loss(U[i:i + 8], V[i:i + 8], 5.0) for i in (0, 8, 16)]).mean()
    assert torch.allclose(M.simulated_grouped_loss(U, V, 5.0, 6, 2), ref, atol=1e-6)


def test_bad_group_size():
    with pytest.raises(ValueError, match="k=3"):
        M.group_of(0, 4, 3)
    with pytest.raises(ValueError):
        M.simulated_grouped_loss(torch.zeros(8, 2), torch.zeros(8, 2), 1.0, 4, 3)
    assert M.group_of(5, 8, 4) == ([4, 5, 6, 7], 1)


def test_e2e_worker_times_every_k():
    "The end-to-end benchmark runs full training steps for every k, the placebo, and the link measurements."
    res = M.launch(M.e2e_worker, 2, [1, 2], 2, 2, 1, [64, 256], 1, 8, 1, 50, 8, 16)
    for r in res:
        assert [set(t) for t in r["reps"]] == [{"1", "2", "placebo"}] * 2
        assert all(v > 0 for t in r["reps"] for v in t.values()) and r["phi"] > 0 and set(r["ring"]) == {"64", "256"}


def _torchrun(tmp_path, *args):
    import json, os, subprocess, sys
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4", "-m",
           "medfound.vl.m2_encoder", *args, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_torchrun_production_path_equals_simulation_and_clip(tmp_path):
    "4 gloo processes under torchrun: new_subgroups + collectives = ring = simulation (= CLIP at k = N), values and grads."
    res = _torchrun(tmp_path, "--check")
    assert res["world"] == 4 and res["backend"] == "gloo" and set(res["check"]) == {"1", "2", "4"}
    for r in res["check"].values():
        assert r["loss_err"] < 1e-5 and r["grad_err"] < 1e-5 and r["ring_err"] < 1e-5


def test_torchrun_training_entry_point(tmp_path):
    "The training entry point runs DDP with grouped gathers on 4 gloo processes, each reading its own shard."
    res = _torchrun(tmp_path, "--k", "2", "--steps", "4", "--data", "synthetic", "--local-b", "4")
    assert res["k"] == 2 and len(res["history"]) == 4 and all(math.isfinite(v) for v in res["history"])


def test_collective_gather_single_process_group():
    "With a world of one, the collective path is the plain CLIP loss."
    import os, tempfile
    import torch.distributed as dist
    with tempfile.TemporaryDirectory() as d:
        dist.init_process_group("gloo", init_method=f"file://{d}/rdzv", rank=0, world_size=1)
        try:
            g = torch.Generator().manual_seed(0)
            U, V = (F.normalize(torch.randn(5, 4, generator=g), dim=-1).requires_grad_() for _ in range(2))
            assert torch.allclose(M.grouped_clip_loss_collective(U, V, 3.0), clip_loss(U, V, 3.0), atol=1e-6)
        finally:
            dist.destroy_process_group()


def _plain_ring_step(send, nxt, prv):
    "The previous ring step (separate isend / irecv): fine on gloo, can hang on NCCL."
    import torch.distributed as dist
    buf = torch.empty_like(send)
    for r in [dist.isend(send.contiguous(), nxt), dist.irecv(buf, prv)]: r.wait()
    return buf


def _ring_worker(rank, world, init_file, out_dir, b, d):
    "Ring gather / reduce-scatter with batch_isend_irecv vs the plain isend/irecv ring and vs gloo's collectives."
    import json
    from pathlib import Path
    import torch.distributed as dist
    M.init_gloo(rank, world, init_file)
    g = torch.Generator().manual_seed(100 + rank)
    x, grad = torch.randn(b, d, generator=g), torch.randn(world * b, d, generator=g)
    every_x = [torch.empty_like(x) for _ in range(world)]; dist.all_gather(every_x, x)
    every_g = [torch.empty_like(grad) for _ in range(world)]; dist.all_gather(every_g, grad)
    res = {}
    for k in (2, 4):
        ranks, pos = M.group_of(rank, world, k)
        gk = grad[: k * b]
        new_fwd, new_bwd = M.ring_all_gather(x, ranks, pos), M.ring_reduce_scatter(gk, ranks, pos)
        batched = M.ring_step
        M.ring_step = _plain_ring_step
        try: old_fwd, old_bwd = M.ring_all_gather(x, ranks, pos), M.ring_reduce_scatter(gk, ranks, pos)
        finally: M.ring_step = batched
        ref_fwd = torch.cat([every_x[r] for r in ranks])
        ref_bwd = sum(every_g[r][: k * b].reshape(k, b, d)[pos] for r in ranks)
        res[k] = dict(same_as_plain=bool(torch.equal(new_fwd, old_fwd) and torch.equal(new_bwd, old_bwd)),
                      fwd_err=(new_fwd - ref_fwd).abs().max().item(), bwd_err=(new_bwd - ref_bwd).abs().max().item())
    out = torch.empty(world * b, d)
    dist.all_gather_into_tensor(out, x)                   # gloo on the pinned torch has both collectives
    rs = torch.empty(b, d)
    dist.reduce_scatter_tensor(rs, grad, op=dist.ReduceOp.SUM)
    res["collectives"] = dict(gather_err=(out - torch.cat(every_x)).abs().max().item(),
                              rs_err=(rs - sum(e.reshape(world, b, d)[rank] for e in every_g)).abs().max().item())
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(res))
    dist.barrier(); dist.destroy_process_group()


def test_batched_ring_equals_plain_ring_and_collectives():
    "4 gloo processes: the batch_isend_irecv ring gives bit-identical values to the plain isend/irecv ring it replaced, and gloo's collectives' values."
    res = M.launch(_ring_worker, 4, 3, 5)
    for r in res:
        for k in ("2", "4"):
            assert r[k]["same_as_plain"] and r[k]["fwd_err"] == 0.0 and r[k]["bwd_err"] < 1e-5
        assert r["collectives"]["gather_err"] == 0.0 and r["collectives"]["rs_err"] < 1e-5
