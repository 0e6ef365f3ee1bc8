"The runner: one failing chapter does not stop the others; the run exits non-zero and names it."
import json, shutil
import nbformat
import pytest
from conftest import ROOT

GOOD = ["profile = 'smoke'",
        "from medfound.records import RunRecord, check_threshold\n"
        "r = RunRecord.start('good', profile)\nr.metrics['x'] = 1.0\n"
        "r.claim('c', 'x reaches 1', check_threshold(r.metrics['x'], 1.0))\nr.finish()"]
BAD = ["profile = 'smoke'", "x = 1", "raise ValueError('boom in the bad chapter')", "y = 2"]


def _nb(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    return nb


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    shutil.copy(ROOT / "settings.ini", tmp_path)
    (tmp_path / "medfound").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "book/papers.yaml").write_text(
        "core: []\nparts: {airways: 'Part I'}\npapers:\n"
        "  - {slug: bad, part: airways, title: Bad, ref: x}\n  - {slug: good, part: airways, title: Good, ref: y}\n"
        "  - {slug: later, part: airways, title: Later, ref: z}\n")
    (tmp_path / "nbs/airways").mkdir(parents=True)
    nbformat.write(_nb(BAD), tmp_path / "nbs/airways/bad.ipynb")
    nbformat.write(_nb(GOOD), tmp_path / "nbs/airways/good.ipynb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MEDFOUND_RECORDS", raising=False)
    return tmp_path


def test_failing_chapter_does_not_stop_the_others(fake_repo, capsys):
    from medfound.cli import main
    code = main(["book", "run", "--profile", "smoke", "--cell-timeout", "120"])
    assert code == 1
    err = capsys.readouterr().err
    assert "chapter bad FAILED" in err and "boom in the bad chapter" in err and "1 of 2 chapter(s) failed: bad" in err
    stats = json.loads((fake_repo / "_runs/smoke/stats.json").read_text())
    assert stats["bad"]["ok"] is False and stats["good"]["ok"] is True
    assert (fake_repo / "_runs/smoke/bad.ipynb").exists() and (fake_repo / "_runs/smoke/good.ipynb").exists()
    rec = json.loads((fake_repo / "_runs/records/smoke/good.json").read_text())
    assert rec["runner"]["ok"] is True and rec["runner"]["runner_wall_s"] > 0
    # the executed notebooks stay outside nbs/
    assert sorted(p.name for p in (fake_repo / "nbs/airways").iterdir()) == ["bad.ipynb", "good.ipynb"]


def test_scorecard_lists_papers_without_chapter(fake_repo):
    from medfound.book import scorecard_md
    md = scorecard_md(fake_repo)
    assert "### Later" in md and "No chapter yet" in md


def test_unknown_chapter_is_an_error(fake_repo):
    from medfound.runner import select_chapters
    with pytest.raises(ValueError, match="unknown chapter"):
        select_chapters(["nope"])
    with pytest.raises(ValueError, match="no notebook yet"):
        select_chapters(["later"])
