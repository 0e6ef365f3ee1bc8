"data_manifest.yaml: structure, and every chapter's dataset listed."
import json, re
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


def test_every_dataset_named_in_code_is_in_the_manifest():
    "Each dataset name the notebooks pass to the data API (with the real manifest) is described in data_manifest.yaml."
    pat = re.compile(r"""(?:dataset_files|real_dataset_dir|fetch|verify)\(\s*['"]([a-z0-9_]+)['"]\s*\)""")
    sources = ["".join(c["source"]) for nb in (ROOT / "nbs").rglob("*.ipynb") for c in json.loads(nb.read_text())["cells"]]
    names = {m for src in sources for m in pat.findall(src)}
    assert names, "no dataset use found: the pattern is stale"
    missing = names - set(load_manifest())
    assert not missing, f"datasets used in notebooks but absent from data_manifest.yaml: {sorted(missing)}"


def test_invalid_manifest_lists_all_problems():
    bad = {"datasets": {"a": {"chapters": [], "real": {"name": "x"}, "standin": {"kind": "apt", "package": "p"}}}}
    with pytest.raises(DataError) as e:
        validate_manifest(bad)
    msg = str(e.value)
    assert "a: no 'chapters' list" in msg and "a.real: missing 'url'" in msg and "a.standin: missing 'version'" in msg
