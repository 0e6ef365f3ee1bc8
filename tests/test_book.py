"""medfound.book: pages from records of every kind, notebook preparation, the book's configuration."""
import copy, json, shutil
from pathlib import Path

import pytest, yaml

from medfound import book
from medfound.records import judge, floor, source_hashes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path):
    "A checkout-like folder: papers.yaml, three stub chapters, a dirty+stale cpu record, a failed one, an old one."
    (tmp_path / "book/records/cpu").mkdir(parents=True); (tmp_path / "_runs/records/smoke").mkdir(parents=True)
    shutil.copy(ROOT / "book/papers.yaml", tmp_path / "book/papers.yaml")
    for part, slug in (("airways", "atm22"), ("vl", "clipa"), ("vision", "arm")):
        (tmp_path / "nbs" / part).mkdir(parents=True, exist_ok=True)
        (tmp_path / "nbs" / part / f"{slug}.ipynb").write_text('{"cells": []}')
    ev = judge([0.55, 0.56, 0.54, 0.55, 0.57], [0.6, 0.61, 0.62, 0.58, 0.6], floor=floor("chance", 0.5, 0.02))
    claim = dict(id="td", claim="A <b> beats B | C", verdict=ev["verdict"], reason=ev["reason"], evidence=ev,
                 paper="97.9 %", caveat="phantoms, not CT", section=None)
    rec = dict(schema=2, chapter="atm22", profile="cpu", status="ok", error=None, paper="x",
               hardware=dict(cpu="x86", cores=2, gpu=None), commit="b" * 40, dirty=False,
               sources=source_hashes("atm22", tmp_path), seeds=[0, 1, 2, 3, 4], started="2026-12-01T00:00:00+00:00",
               wall_time_s=1.0, memory=dict(peak_rss_mib=10.0), metrics={}, config={}, claims=[claim],
               checks=[dict(id="k", check="c", passed=False, evidence={})], runner=dict(ok=True, runner_wall_s=2.0, finished="x"))
    (tmp_path / "book/records/cpu/atm22.json").write_text(json.dumps(rec))
    (tmp_path / "_runs/records/smoke/atm22.json").write_text(json.dumps(dict(rec, profile="smoke")))
    (tmp_path / "book/records/cpu/clipa.json").write_text(json.dumps(dict(rec, chapter="clipa", status="failed",
                                                                             error="boom\nRuntimeError: out of memory")))
    (tmp_path / "book/records/cpu/arm.json").write_text(json.dumps(dict(chapter="arm", profile="cpu", claims=[{"claim": "x"}])))
    return tmp_path


def test_scorecard_kinds(root):
    md = book.scorecard_md(root, in_book={"atm22", "clipa"}, forest=None)
    row = next(l for l in md.splitlines() if 'href="chapters/airways/atm22.html"' in l and "beats" in l)
    assert "A &lt;b&gt; beats B \\| C" in row and "**not reproduced**" in row and "phantoms, not CT" in row
    assert "mf-dirty" not in row and "mf-stale" not in row
    fail = next(l for l in md.splitlines() if "clipa" in l and "run failed" in l)
    assert "RuntimeError: out of memory" in fail and "| failed |" in fail and "reproduced" not in fail
    assert book.OLD_FORMAT in md and ":::{figure}" not in md
    counts = next(l for l in md.splitlines() if l.startswith("| **all**"))
    assert counts == "| **all** | **0** | **1** | **0** | **1 / 1 / 0** | **0 / 1** |", counts


def test_stale_and_dirty(root):
    r = json.loads((root / "book/records/cpu/atm22.json").read_text())
    (root / "book/records/cpu/atm22.json").write_text(json.dumps(dict(r, dirty=True)))
    (root / "nbs/airways/atm22.ipynb").write_text('{"cells": [], "changed": 1}')
    st = book.record_state(book.latest_records(root)[("atm22", "cpu")], root)
    assert st["dirty"] and st["stale"] and not st["failed"] and not st["old"]
    box = book.record_box_md(book.latest_records(root)[("atm22", "cpu")], "cpu", root)
    assert "mf-dirty" in box and "stale" in box and "not results" not in box


def test_forest_plot(root, tmp_path):
    rows = book.forest_rows(book.latest_records(root), book.load_papers(root), root)
    assert len(rows) == 1 and rows[0]["verdict"] == "not reproduced" and rows[0]["x"][2] < 0
    p = book.forest_plot(rows, tmp_path / "f" / "forest.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    assert Image.open(p).info.get("dpi", (150, 150))[0] >= 149


def test_real_records_never_crash():
    "Whatever is committed now (old or new format) renders."
    md = book.scorecard_md(ROOT, forest=None); assert "# Scorecard" in md
    assert "| chapter | profile |" in book.statistics_md(ROOT)
    for r in book.latest_records(ROOT).values():
        assert ":class: record-box" in book.record_box_md(r, r["profile"], ROOT)


def test_prepare_smoke_chapter(root):
    rec = book.latest_records(root)[("atm22", "smoke")]
    nb = {"cells": [{"cell_type": "markdown", "id": "t", "metadata": {}, "source": ["# ATM\n", "summary"]},
                    {"cell_type": "code", "id": "p", "metadata": {"tags": ["injected-parameters"]}, "source": "profile = 'smoke'",
                     "outputs": []},
                    {"cell_type": "code", "id": "f", "metadata": {}, "source": "fig.suptitle('Dice per seed')",
                     "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": "x"}},
                                 {"output_type": "stream", "name": "stdout", "text": f"{ROOT}/book/x.json written"}]}]}
    out = book.prepare_notebook(copy.deepcopy(nb), "smoke", rec, root=ROOT, chapter="atm22")
    assert out["cells"][1]["id"] == "mf-record-box" and book.SMOKE_NOTE in out["cells"][1]["source"]
    f = out["cells"][3]
    assert f["metadata"]["mystnb"]["image"]["alt"] == "Dice per seed" and f["outputs"][1]["text"] == "book/x.json written"
    assert "remove-cell" in out["cells"][2]["metadata"]["tags"]


def test_config():
    cfg = yaml.safe_load((ROOT / "book/_config.yml").read_text())
    sc = cfg["sphinx"]["config"]
    assert sc["nb_render_markdown_format"] == "myst" and "medfound.book" in cfg["sphinx"]["extra_extensions"]
    assert "_static" not in sc["html_extra_path"][0] and sc["mathjax_path"].endswith("tex-chtml.js")
    assert cfg["launch_buttons"]["binderhub_url"] and cfg["launch_buttons"]["colab_url"] and cfg["repository"]["url"]
    make = (ROOT / "Makefile").read_text()
    assert "browser-test" in next(l for l in make.splitlines() if l.startswith("test:"))


def test_matplotlibrc_matches_viz():
    "book/matplotlibrc (for MATPLOTLIBRC in the runner's kernels) says what medfound.viz.BOOK_RC says."
    import matplotlib
    from medfound.viz import BOOK_RC
    rc = matplotlib.rc_params_from_file(str(ROOT / "book/matplotlibrc"), use_default_template=False)
    assert {k: rc[k] for k in BOOK_RC} == BOOK_RC
