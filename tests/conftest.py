import os, sys
from pathlib import Path

# Without a GPU, Triton kernels run in its interpreter. The mode is read when kernels are built, so it
# must be set before any test module imports them (the Makefile's test targets set it too).
try:
    import torch
    if not torch.cuda.is_available(): os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:
    pass
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def data_home(tmp_path, monkeypatch):
    "An empty MEDFOUND_DATA cache."
    monkeypatch.setenv("MEDFOUND_DATA", str(tmp_path / "data"))
    return tmp_path / "data"
