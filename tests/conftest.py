import os, sys
from pathlib import Path

# Without a GPU, Triton kernels run in its interpreter. The mode is read when kernels are built, so it
# must be set before any test module imports them (the Makefile's test targets set it too).
try:
    import torch
    if not torch.cuda.is_available(): os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:
    torch = None
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def data_home(tmp_path, monkeypatch):
    "An empty MEDFOUND_DATA cache."
    monkeypatch.setenv("MEDFOUND_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


# ---- Tests do not leak process state into each other --------------------------------------------------------
# What a test (or the code it calls: the runner sets MEDFOUND_STATIC and MEDFOUND_FRESH, chapters call
# torch.set_num_threads) changes in the environment variables medfound, Triton and OpenMP read, in torch's thread
# count or in the working directory is put back after the test, and after each module for module-scoped fixtures,
# so the order of tests never matters. What a test module sets when it is imported (test_arm sets TRITON_INTERPRET)
# is taken back after the import and applied to that module's tests only. Restorations are listed at the end.

def _watched(name: str) -> bool:
    return name.startswith("MEDFOUND_") or name in ("TRITON_INTERPRET", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

def _snapshot() -> dict:
    return dict(env={k: v for k, v in os.environ.items() if _watched(k)}, cwd=os.getcwd(),
                threads=torch.get_num_threads() if torch else None)

def _diff(before: dict, after: dict) -> dict:
    "{what: (before, after)} for everything that differs."
    d = {k: (before["env"].get(k), after["env"].get(k)) for k in set(before["env"]) | set(after["env"])
         if before["env"].get(k) != after["env"].get(k)}
    if before["threads"] != after["threads"]: d["torch threads"] = (before["threads"], after["threads"])
    if before["cwd"] != after["cwd"]: d["cwd"] = (before["cwd"], after["cwd"])
    return d

def _apply(diff: dict, side: int):
    "Set every entry of `diff` to its value on `side` (0: before, 1: after)."
    for k, vals in diff.items():
        v = vals[side]
        if k == "torch threads": torch.set_num_threads(v)
        elif k == "cwd": os.chdir(v)
        elif v is None: os.environ.pop(k, None)
        else: os.environ[k] = v

_IMPORT_DIFF = pytest.StashKey[dict]()
_RESTORED: list[str] = []

@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    "Take back what importing a test module changed; keep it to re-apply around that module's own tests."
    if not isinstance(collector, pytest.Module): return (yield)
    before = _snapshot()
    try: return (yield)
    finally:
        diff = _diff(before, _snapshot())
        if diff: collector.stash[_IMPORT_DIFF] = diff; _apply(diff, 0)

def _restore(before: dict, where: str):
    diff = _diff(before, _snapshot())
    if diff:
        _apply(diff, 0)
        _RESTORED.append(f"{where}: " + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items())))

@pytest.fixture(scope="module", autouse=True)
def _module_state(request):
    before = _snapshot()
    _apply(request.node.stash.get(_IMPORT_DIFF, {}), 1)
    yield
    _restore(before, request.node.nodeid + " (module)")

@pytest.fixture(autouse=True)
def _test_state(request):
    before = _snapshot()
    yield
    _restore(before, request.node.nodeid)

def pytest_terminal_summary(terminalreporter):
    if _RESTORED:
        terminalreporter.section("process state restored after tests")
        for line in _RESTORED: terminalreporter.write_line(line)
