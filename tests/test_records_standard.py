"""Every committed cpu/gpu record meets the evidence standard (../shared/handbook.md): schema 2, a clean
commit, not stale, a successful run, >= 5 seeds per claim, a floor for every claim, each claim's rule able
to give all three verdicts, checks kept apart. Each record is its own test case, named by its file."""
import json
import pytest
from medfound.records import validate_record, rule_outcomes, source_hashes, MIN_SEEDS, VERDICTS
from conftest import ROOT

RECORDS = sorted((ROOT / "book" / "records").glob("*/*.json"))


@pytest.mark.parametrize("path", RECORDS, ids=[f"{p.parent.name}/{p.stem}" for p in RECORDS])
def test_record_meets_the_standard(path):
    rec = validate_record(json.loads(path.read_text()))
    assert rec["profile"] in ("cpu", "gpu") and path.stem == rec["chapter"] and path.parent.name == rec["profile"]
    assert rec["status"] == "ok" and rec.get("runner", {}).get("ok"), "a failed run is not a result"
    assert not rec["dirty"] and rec["commit"] not in ("", "unknown"), "records must come from a clean commit"
    now = source_hashes(rec["chapter"], ROOT)
    assert rec["sources"]["notebook_sha256"] == now["notebook_sha256"], \
        f"stale: {now['notebook']} changed since this record was made; re-run it (medfound book run --clean)"
    assert rec["claims"], "a paper chapter judges at least one claim"
    for c in rec["claims"]:
        ev = c["evidence"]
        assert ev["kind"] in ("paired", "one-sample")
        assert ev["n_all"] >= MIN_SEEDS, f"{c['id']}: {ev['n_all']} seeds < {MIN_SEEDS}"
        assert len(set(ev["seeds"])) == len(ev["seeds"]) and ev["n_all"] <= len(rec["seeds"]), \
            f"{c['id']}: more values than seeds (sizes or strategies pooled as seeds?)"
        assert ev["floor"] and ev["floor"]["name"], f"{c['id']}: no trivial reference (floor)"
        out = rule_outcomes(ev)
        assert set(out.values()) == set(VERDICTS), f"{c['id']}: rule cannot give every verdict: {out}"
    ids = [x["id"] for x in rec["claims"]] + [x["id"] for x in rec["checks"]]
    assert len(ids) == len(set(ids)), "claims and checks share an id"
