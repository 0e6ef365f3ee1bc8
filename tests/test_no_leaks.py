"tests/conftest.py puts back what tests change (environment, torch threads, cwd): the order of tests does not matter."
import os, subprocess, sys
from pathlib import Path

from conftest import ROOT

LEAKY = '''
import os, torch
os.environ["MEDFOUND_DATA"] = "/set/at/import"                  # at import: for this module's tests only
@pytest.fixture(scope="module")
def threads():
    torch.set_num_threads(1)                                     # a module fixture changing process state
def test_leaks(threads):
    assert os.environ["MEDFOUND_DATA"] == "/set/at/import" and torch.get_num_threads() == 1
    os.environ["MEDFOUND_STATIC"] = "1"; os.environ["TRITON_INTERPRET"] = "0"; os.environ["MEDFOUND_FRESH"] = "1"
    os.chdir("/")
def test_still_module_state(threads):
    assert os.environ["MEDFOUND_DATA"] == "/set/at/import" and torch.get_num_threads() == 1
    assert "MEDFOUND_STATIC" not in os.environ and os.environ["TRITON_INTERPRET"] == "1"
'''

CLEAN = '''
import os, torch
def test_clean():
    assert os.environ["MEDFOUND_DATA"] == "/base" and "MEDFOUND_STATIC" not in os.environ and "MEDFOUND_FRESH" not in os.environ
    assert os.environ["TRITON_INTERPRET"] == "1" and torch.get_num_threads() == 2 and os.getcwd() == os.environ["START"]
'''


def test_state_is_restored_whatever_the_order(tmp_path):
    (tmp_path / "conftest.py").write_text((ROOT / "tests/conftest.py").read_text())
    (tmp_path / "test_a_leaky.py").write_text("import pytest" + LEAKY)
    (tmp_path / "test_b_clean.py").write_text(CLEAN)
    (tmp_path / "test_0_clean.py").write_text(CLEAN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFOUND_")}
    env.update(MEDFOUND_DATA="/base", TRITON_INTERPRET="1", OMP_NUM_THREADS="2", START=str(tmp_path))
    for order in (["test_0_clean.py", "test_a_leaky.py", "test_b_clean.py"], ["test_a_leaky.py", "test_0_clean.py"]):
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *order], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        assert "process state restored after tests" in r.stdout
        assert "test_a_leaky.py::test_leaks: MEDFOUND_FRESH None -> '1', MEDFOUND_STATIC None -> '1'" in r.stdout
        assert "test_a_leaky.py (module): MEDFOUND_DATA '/base' -> '/set/at/import', torch threads 2 -> 1" in r.stdout
