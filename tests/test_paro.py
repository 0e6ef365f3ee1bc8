"PaRO sharding strategies and HO-Ring: exact updates across gloo processes, bytes against the cost model, bad inputs."
import json, math, os, subprocess, sys
import pytest
import torch
from medfound.systems import paro as PR


def test_every_strategy_bitwise_on_four_processes():
    "4 gloo processes, groups of 2: every strategy on both rings gives the single-process AdamW update bit for bit."
    names = [s.name for s in PR.all_strategies()]
    res = PR.launch(PR.exactness_worker, 4, 2, names, ["ho", "flat"], 2, 2, [40])[0]
    assert len(res) == 2 * len(names) == 28
    bad = [(r["strategy"], r["collective"], r["n_differ"]) for r in res if not r["bitwise"]]
    assert not bad, bad


class _WrongOrder(PR.Collectives):
    "A deliberately broken flat ring: global shards assigned in rank order, not the order the shards were cut in."
    def __init__(self, links, kind="ho"):
        super().__init__(links, kind)
        self.flat_order = list(range(links.topo.world))


def test_exactness_check_can_fail(monkeypatch):
    "The check is not true by construction: a wrong chunk order on the flat ring breaks the update."
    monkeypatch.setattr(PR, "Collectives", _WrongOrder)
    res = PR.launch(PR.exactness_worker, 4, 2, ["NNG"], ["flat"], 1, 1, [40])[0]
    assert not res[0]["bitwise"] and res[0]["n_differ"] > 0


def test_bytes_and_memory_match_the_model():
    "Bytes per link class counted on the rings equal the ring cost rule; held state bytes equal the memory formula."
    names = ["NNN", "NIG", "IIG", "GGG"]
    res = PR.launch(PR.memory_worker, 4, 2, names, (32, 64), 1, 2, ["ho", "flat"], False)
    n = res[0]["ho/NNN"]["n"]
    for kind in ("ho", "flat"):
        for s in names:
            for rank, r in enumerate(res):
                got = r[f"{kind}/{s}"]
                model = PR.traffic_model(s, n, 2, 4, rank=rank, accum=2, kind=kind)
                assert {k: float(v) for k, v in got["sent"].items()} == model, (kind, s, rank)
                assert sum(got["held"].values()) == PR.Strategy.parse(s).memory_bytes(n, 2, 4)


def test_strategies_and_topology():
    assert len(PR.all_strategies()) == 14
    assert PR.Strategy.parse("ZeRO-2").name == "NGG" and PR.Strategy.parse("iig").name == "IIG"
    with pytest.raises(ValueError, match="at least as finely"):
        PR.Strategy.parse("GNN")
    with pytest.raises(ValueError):
        PR.Strategy.parse("NIGX")
    with pytest.raises(ValueError, match="divide"):
        PR.Topology(0, 6, 4)
    t = PR.Topology(5, 8, 4)
    assert (t.a, t.l, t.intra, t.inter) == (1, 1, [4, 5, 6, 7], [1, 5])
    assert t.shard("G", 16) == slice(6, 8) and t.shard("I", 16) == slice(4, 8)


def test_time_model():
    m = PR.ring_time_model(4096, 2, 4, lambda B: 1e-3, lambda B: B * 1e-6)
    assert math.isclose(m["flat"], 6 * (1e-3 + 1024e-6)) and math.isclose(m["ho"], 2e-3 + 2 * (1e-3 + 1024e-6))


def test_optimizer_needs_distributed_and_backward():
    with pytest.raises(RuntimeError, match="torch.distributed"):
        PR.PaROOptimizer(PR.toy_mlp(), "NIG", 2)


def test_torchrun_entry_point(tmp_path):
    "The training entry point runs under torchrun on 4 gloo processes and the loss goes down."
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "4", "-m",
           "medfound.systems.paro", "--strategy", "IIG", "--group-size", "2", "--steps", "8", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["world"] == 4 and res["strategy"] == "IIG" and res["backend"] == "gloo"
    assert len(res["history"]) == 8 and res["history"][-1] < res["history"][0]
    assert res["sent_per_step"]["inter"] > 0 and res["sent_per_step"]["intra"] > 0
