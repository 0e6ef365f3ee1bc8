"data_manifest.yaml: structure, and every chapter's dataset listed."
import re
import yaml
import pytest
from medfound.data import load_manifest, validate_manifest, DataError
from medfound.runner import load_papers
from conftest import ROOT


def test_manifest_valid():
    ds = load_manifest()
    assert ds, "no datasets"
    for name, d in ds.items():
        assert re.fullmatch(r"[a-z0-9_]+", name), name
        s = d["standin"]
        if s["kind"] == "generator":
            mod, fn = s["generator"].rsplit(".", 1)
            import importlib
            assert callable(getattr(importlib.import_module(mod), fn)), s["generator"]


def test_chapters_named_in_manifest_exist():
    known = {p["slug"] for p in load_papers()["papers"]}
    for name, d in load_manifest().items():
        for ch in d["chapters"]:
            assert ch in known, f"{name}: unknown chapter {ch}"


def test_every_chapter_that_exists_has_its_data_in_the_manifest():
    used = {ch for d in load_manifest().values() for ch in d["chapters"]}
    for p in load_papers()["papers"]:
        if p["notebook"] and p["slug"] in ("atm22",):
            assert p["slug"] in used


def test_invalid_manifest_lists_all_problems():
    bad = {"datasets": {"a": {"chapters": [], "real": {"name": "x"}, "standin": {"kind": "apt", "package": "p"}}}}
    with pytest.raises(DataError) as e:
        validate_manifest(bad)
    msg = str(e.value)
    assert "a: no 'chapters' list" in msg and "a.real: missing 'url'" in msg and "a.standin: missing 'version'" in msg
