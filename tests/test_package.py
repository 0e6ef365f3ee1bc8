"The public API a reader imports, and the command line."
import subprocess, sys
import medfound
from medfound import core, records, data, train, viz, runner, cli


def test_version_and_modules():
    assert medfound.__version__
    for fn in (core.profile_sizes, core.seed_everything, records.RunRecord, records.compare_seeds,
               data.load_manifest, data.fetch, train.fit, viz.show_slices, runner.run_chapters, cli.main):
        assert callable(fn)


def test_chapter_imports():
    from medfound.airways.atm22 import airway_phantom, atm_metrics, parse_tree, find_atm_cases
    ph = airway_phantom(24, 5, seed=0)
    assert ph["ct"].shape == (24, 24, 24) and ph["label"].any()


def test_cli_data_list_runs():
    r = subprocess.run([sys.executable, "-c", "import sys; from medfound.cli import main; sys.exit(main(['data','list']))"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "atm22_airways" in r.stdout


def test_unknown_profile_is_a_clear_error():
    import pytest
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        core.profile_sizes("tiny", smoke={}, cpu={})
