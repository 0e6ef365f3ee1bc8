"Run records: schema, verdicts computed from numbers, committed records valid."
import json
import jsonschema
import pytest
from medfound.records import RunRecord, compare_seeds, check_threshold, validate_record, load_records
from conftest import ROOT


def test_record_roundtrip(tmp_path):
    r = RunRecord.start("x", "cpu", seeds=[1, 2, 3])
    r.metrics["acc"] = 0.5
    r.claim("c", "A beats B", compare_seeds([0.9, 0.91, 0.92], [0.5, 0.52, 0.49]))
    p = r.finish(tmp_path)
    rec = validate_record(json.loads(p.read_text()))
    assert rec["claims"][0]["verdict"] == "reproduced"
    for k in ("hardware", "commit", "wall_time_s", "memory", "seeds"):
        assert k in rec
    assert rec["memory"]["peak_rss_mib"] > 0


def test_schema_rejects_typed_in_verdict():
    r = RunRecord.start("x", "cpu").to_dict()
    r["claims"] = [{"id": "c", "claim": "t", "verdict": "probably", "evidence": {}}]
    with pytest.raises(jsonschema.ValidationError):
        validate_record(r)


def test_claim_needs_computed_evidence():
    with pytest.raises(ValueError):
        RunRecord.start("x", "cpu").claim("c", "t", {"note": "trust me"})


@pytest.mark.parametrize("a,b,hib,want", [([3, 3.1, 2.9], [1, 1.1, 0.9], True, "reproduced"),
                                           ([3, 3.1, 2.9], [1, 1.1, 0.9], False, "not reproduced"),
                                           ([1, 3, 2], [2, 1, 3], True, "inconclusive")])
def test_verdict_rule(a, b, hib, want):
    assert compare_seeds(a, b, higher_is_better=hib)["verdict"] == want


def test_committed_records_are_valid():
    recs = load_records(ROOT / "book" / "records")
    for r in recs:
        validate_record(r)
        assert r["profile"] in ("cpu", "gpu")
