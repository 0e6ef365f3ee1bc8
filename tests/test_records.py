"Run records: schema, verdicts computed from numbers, guards, provenance, atomic writes."
import json, math
import jsonschema
import numpy as np
import pytest
from medfound.records import (RunRecord, judge, floor, check_threshold, validate_record, load_records,
                              rule_outcomes, rule_is_reachable, write_json_atomic, VERDICTS, MIN_SEEDS)
from conftest import ROOT

CH = "atm22"   # records must name a chapter of the book


def test_record_roundtrip(tmp_path):
    r = RunRecord.start(CH, "cpu", seeds=range(5))
    r.metrics["acc"] = 0.5
    r.claim("c", "A beats B", judge([0.9, 0.91, 0.92, 0.9, 0.93], [0.5, 0.52, 0.49, 0.5, 0.51]))
    p = r.finish(tmp_path)
    rec = validate_record(json.loads(p.read_text()))
    assert rec["claims"][0]["verdict"] == "reproduced" and rec["schema"] == 2 and rec["status"] == "ok"
    for k in ("hardware", "commit", "dirty", "sources", "wall_time_s", "memory", "seeds", "checks"):
        assert k in rec
    assert rec["memory"]["peak_rss_mib"] > 0 and rec["sources"]["notebook"] == "nbs/airways/atm22.ipynb"


def test_schema_rejects_typed_in_verdict():
    r = RunRecord.start(CH, "cpu").to_dict()
    r["claims"] = [{"id": "c", "claim": "t", "verdict": "probably", "reason": "", "evidence": {}}]
    with pytest.raises(jsonschema.ValidationError):
        validate_record(r)


@pytest.mark.parametrize("ev", [{"note": "trust me"}, {"verdict": "reproduced"}, check_threshold(0.9, 0.8)])
def test_claim_needs_an_interval(ev):
    with pytest.raises(ValueError):
        RunRecord.start(CH, "cpu").claim("c", "t", ev)


@pytest.mark.parametrize("name", ["../../etc/x", "a/b", "UPPER", "", "not_a_chapter"])
def test_chapter_name_checked_before_it_becomes_a_path(name, tmp_path):
    with pytest.raises(ValueError):
        RunRecord.start(name, "cpu")


def test_nonfinite_values_are_valid_json(tmp_path):
    r = RunRecord.start(CH, "smoke"); r.metrics.update(a=float("nan"), b=[1.0, float("inf")], c=np.float64("-inf"))
    rec = json.loads(r.finish(tmp_path).read_text())          # json.loads would accept bare NaN; check the text
    text = (tmp_path / f"{CH}.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert rec["metrics"] == {"a": None, "b": [1.0, None], "c": None}
    assert rec["nonfinite"] == {"/metrics/a": "nan", "/metrics/b/1": "inf", "/metrics/c": "-inf"}


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = write_json_atomic(tmp_path / "r.json", {"a": 1})
    with pytest.raises(ValueError):
        write_json_atomic(p, {"a": float("nan")})             # allow_nan=False fails mid-write
    assert json.loads(p.read_text()) == {"a": 1} and sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]


def test_load_records_raises_on_invalid_file(tmp_path):
    (tmp_path / "bad.json").write_text('{"chapter": "x"}')
    with pytest.raises(ValueError, match="bad.json"):
        load_records(tmp_path)


# --- the verdict rule: each verdict reachable, guards -------------------------------------------------
@pytest.mark.parametrize("a,b,hib,want", [([3, 3.1, 2.9, 3.0, 3.05], [1, 1.1, 0.9, 1.0, 1.0], True, "reproduced"),
                                           ([3, 3.1, 2.9, 3.0, 3.05], [1, 1.1, 0.9, 1.0, 1.0], False, "not reproduced"),
                                           ([1, 3, 2, 2.5, 1.5], [2, 1, 3, 2, 2], True, "inconclusive")])
def test_verdict_rule(a, b, hib, want):
    assert judge(a, b, higher_is_better=hib)["verdict"] == want


def test_interval_is_scipy_student_t():
    from scipy import stats
    d = np.array([0.3, 0.1, 0.25, 0.2, 0.15])
    ev = judge(d, np.zeros(5))
    lo, hi = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert np.allclose(ev["ci"], [lo, hi]) and ev["n"] == 5
    # sign-flip over 5 seeds cannot go below 2^-5
    assert ev["p_signflip"] >= 2 ** -5 - 1e-12


def test_three_seeds_with_a_clear_gain_are_not_enough_in_cpu():
    r = RunRecord.start(CH, "cpu")
    c = r.claim("c", "t", judge([0.9, 0.91, 0.92], [0.5, 0.5, 0.51]))
    assert c["verdict"] == "inconclusive" and c["reason"].startswith("seeds") and MIN_SEEDS == 5


def test_floor_guard():
    ev = judge([0.13, 0.12, 0.13, 0.125, 0.13], [0.1, 0.1, 0.11, 0.1, 0.1], floor=floor("chance", 0.1, 0.05))
    assert ev["verdict_clean"] == "reproduced" and ev["verdict"] == "inconclusive" and "floor" in ev["reason"]


def test_collapse_guard():
    ev = judge([0.9, 0.91, 0.0, 0.9, 0.92], [0.8, 0.8, 0.79, 0.81, 0.8], collapsed=[0, 0, 1, 0, 0])
    assert ev["verdict"] == "inconclusive" and ev["reason"].startswith("collapse")


@pytest.mark.parametrize("kw", [dict(), dict(higher_is_better=False), dict(margin=-0.02),
                                dict(floor=floor("chance", 0.1, 0.05), bounds=(0, 1)), dict(test="bootstrap")])
def test_every_rule_reaches_each_verdict(kw):
    ev = judge([0.5, 0.52, 0.51, 0.5, 0.53], [0.4, 0.41, 0.42, 0.4, 0.41], **kw)
    assert set(rule_outcomes(ev).values()) == set(VERDICTS), rule_outcomes(ev)


def test_unreachable_rule_is_caught():
    assert not rule_is_reachable(judge([0.5] * 5, [0.4] * 5, margin=2.0, bounds=(0, 1)))
