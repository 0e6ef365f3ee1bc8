"The runner: one failing chapter does not stop the others; the run exits non-zero and names it."
import json, shutil
import nbformat
import pytest
from conftest import ROOT

GOOD = ["profile = 'smoke'",
        "from medfound.records import RunRecord, judge\n"
        "r = RunRecord.start('good', profile)\nr.metrics['x'] = 1.0\n"
        "r.claim('c', 'x beats y', judge([1.0, 1.1, 1.2, 1.1, 1.0], [0.5, 0.6, 0.5, 0.6, 0.5]))\nr.finish()"]
NORECORD = ["profile = 'smoke'", "x = 1"]
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
        "  - {slug: later, part: airways, title: Later, ref: z}\n  - {slug: norecord, part: airways, title: N, ref: w}\n")
    (tmp_path / "nbs/airways").mkdir(parents=True)
    nbformat.write(_nb(BAD), tmp_path / "nbs/airways/bad.ipynb")
    nbformat.write(_nb(GOOD), tmp_path / "nbs/airways/good.ipynb")
    nbformat.write(_nb(NORECORD), tmp_path / "nbs/airways/norecord.ipynb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDFOUND_LOCK_DIR", str(tmp_path))   # toy runs never wait behind a real cpu run
    monkeypatch.delenv("MEDFOUND_RECORDS", raising=False)
    return tmp_path


def test_failing_chapter_does_not_stop_the_others(fake_repo, capsys):
    from medfound.cli import main
    code = main(["book", "run", "--profile", "smoke", "--cell-timeout", "120"])
    assert code == 1
    err = capsys.readouterr().err
    assert "chapter bad FAILED" in err and "boom in the bad chapter" in err and "2 of 3 chapter(s) failed: bad, norecord" in err
    stats = json.loads((fake_repo / "_runs/smoke/stats.json").read_text())
    assert stats["bad"]["ok"] is False and stats["good"]["ok"] is True
    assert (fake_repo / "_runs/smoke/bad.ipynb").exists() and (fake_repo / "_runs/smoke/good.ipynb").exists()
    rec = json.loads((fake_repo / "_runs/records/smoke/good.json").read_text())
    assert rec["runner"]["ok"] is True and rec["runner"]["runner_wall_s"] > 0
    # the executed notebooks stay outside nbs/
    assert sorted(p.name for p in (fake_repo / "nbs/airways").iterdir()) == ["bad.ipynb", "good.ipynb", "norecord.ipynb"]
    # a failed chapter, or one that never wrote its record, leaves a record that says so and holds no verdict
    for slug in ("bad", "norecord"):
        rec = json.loads((fake_repo / f"_runs/records/smoke/{slug}.json").read_text())
        assert rec["status"] == "failed" and rec["claims"] == [] and rec["runner"]["ok"] is False and rec["error"]
    assert "without writing its run record" in stats["norecord"]["error"]


def test_incremental_rerun(fake_repo, capsys):
    from medfound.runner import run_chapters
    assert run_chapters("smoke", ["good"])["good"]["ok"]
    assert run_chapters("smoke", ["good"]) == {}                         # nothing changed: skipped
    assert "up to date" in capsys.readouterr().out
    assert run_chapters("smoke", ["good"], force=True)["good"]["ok"]    # --force runs anyway
    nb = nbformat.read(fake_repo / "nbs/airways/good.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("z = 3")); nbformat.write(nb, fake_repo / "nbs/airways/good.ipynb")
    assert "good" in run_chapters("smoke", ["good"])                     # the notebook changed: runs again


def test_scorecard_lists_papers_without_chapter(fake_repo):
    from medfound.book import scorecard_md
    md = scorecard_md(fake_repo)
    assert "No chapter yet: Later" in md


def test_unknown_chapter_is_an_error(fake_repo):
    from medfound.runner import select_chapters
    with pytest.raises(ValueError, match="unknown chapter"):
        select_chapters(["nope"])
    with pytest.raises(ValueError, match="no notebook yet"):
        select_chapters(["later"])


def test_clean_run_names_a_clean_commit(fake_repo):
    "`--clean` runs a clone of HEAD: the record names that commit, clean, though the tree has local edits."
    import subprocess
    from medfound.runner import run_clean
    git = lambda *a: subprocess.run(["git", *a], cwd=fake_repo, check=True, capture_output=True, text=True).stdout
    (fake_repo / "medfound/.keep").write_text("")   # git keeps no empty folders; a real checkout has medfound/
    git("init", "-q"); git("add", "."); git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    (fake_repo / "settings.ini").write_text((fake_repo / "settings.ini").read_text() + "\n# local edit\n")
    st = run_clean("cpu", ["good"], cell_timeout=120)
    rec = json.loads((fake_repo / "book/records/cpu/good.json").read_text())
    assert st["good"]["ok"] and rec["commit"] == git("rev-parse", "HEAD").strip() and rec["dirty"] is False
    assert rec["claims"][0]["verdict"] == "reproduced" and (fake_repo / "_runs/cpu/good.ipynb").exists()


def test_runner_leaves_the_environment_as_it_found_it(fake_repo, monkeypatch):
    import os
    from medfound.runner import run_chapters
    monkeypatch.delenv("MEDFOUND_STATIC", raising=False); monkeypatch.delenv("MEDFOUND_FRESH", raising=False)
    run_chapters("smoke", ["good"], force=True)
    assert "MEDFOUND_STATIC" not in os.environ and "MEDFOUND_FRESH" not in os.environ


def test_parallel_smoke_run_gives_the_same_outcome(fake_repo, capsys):
    "`--jobs 2` (what CI uses for the smoke book): same failures, same records, stats in book order; cpu refuses it."
    from medfound.cli import main
    from medfound.runner import run_chapters
    code = main(["book", "run", "--profile", "smoke", "--jobs", "2", "--cell-timeout", "120"])
    assert code == 1
    assert "2 of 3 chapter(s) failed: bad, norecord" in capsys.readouterr().err
    stats = json.loads((fake_repo / "_runs/smoke/stats.json").read_text())
    assert {k: v["ok"] for k, v in stats.items()} == {"bad": False, "good": True, "norecord": False}
    assert json.loads((fake_repo / "_runs/records/smoke/good.json").read_text())["status"] == "ok"
    with pytest.raises(ValueError, match="only the smoke profile"):
        run_chapters("cpu", jobs=2)
