import os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def data_home(tmp_path, monkeypatch):
    "An empty MEDFOUND_DATA cache."
    monkeypatch.setenv("MEDFOUND_DATA", str(tmp_path / "data"))
    return tmp_path / "data"
