"The vision-language image-caption cache (`medfound.vl.common.load_pairs`) sits on `derived_cache`."
import json
import numpy as np
import pytest
from medfound.data import DataError
from medfound.vl import common as C


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    "A caption source 'fake' whose pairs are read from one text file; counts how often it is built."
    monkeypatch.setenv("MEDFOUND_DATA", str(tmp_path / "data"))
    src = tmp_path / "captions.txt"
    src.write_text("a red square\na blue circle\n")
    builds = []

    def load(size):
        builds.append(size)
        lines = src.read_text().split("\n")[:-1]
        imgs = np.stack([np.full((size, size, 3), 10 * i, np.uint8) for i in range(len(lines))])
        return C.Pairs(imgs, lines, [l.upper() for l in lines], [f"fake/{i}" for i in range(len(lines))],
                       ["fake"] * len(lines), ["shape"] * len(lines))

    monkeypatch.setitem(C._SOURCES, "fake", (load, lambda: [src]))
    return src, builds, tmp_path / "data" / "vl_cache" / "fake_8.npz"


def test_cache_is_reused_while_inputs_are_unchanged(fake_source):
    src, builds, cache = fake_source
    a = C.load_pairs("fake", size=8)
    b = C.load_pairs("fake", size=8)
    assert len(builds) == 1 and cache.exists() and a.en == b.en == ["a red square", "a blue circle"]
    assert np.array_equal(a.images, b.images) and b.zh == ["A RED SQUARE", "A BLUE CIRCLE"]
    rec = json.loads(cache.with_name(cache.name + ".inputs.json").read_text())
    assert rec["inputs"][0][0] == str(src) and rec["params"]["size"] == 8


def test_changed_input_rebuilds_the_cache(fake_source):
    src, builds, cache = fake_source
    assert len(C.load_pairs("fake", size=8)) == 2
    src.write_text("a red square\na blue circle\na green star\n")      # the input file changes
    p = C.load_pairs("fake", size=8)
    assert len(builds) == 2 and len(p) == 3 and p.en[-1] == "a green star"
    C.load_pairs("fake", size=16)                                      # another size: another cache
    assert builds == [8, 8, 16]


def test_corrupted_cache_is_rebuilt(fake_source):
    src, builds, cache = fake_source
    ref = C.load_pairs("fake", size=8)
    raw = bytearray(cache.read_bytes()); raw[len(raw) // 2] ^= 0x01    # one bit flipped inside the .npz
    cache.write_bytes(bytes(raw))
    p = C.load_pairs("fake", size=8)
    assert len(builds) == 2 and np.array_equal(p.images, ref.images) and p.en == ref.en
    cache.write_bytes(b"")                                             # truncated to nothing
    assert C.load_pairs("fake", size=8).en == ref.en and len(builds) == 3


def test_unreadable_cache_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="x.npz"):
        C._read_pairs_npz(bad)


def test_missing_input_and_unknown_source_are_named(fake_source, monkeypatch):
    src, builds, cache = fake_source
    src.unlink()
    with pytest.raises(DataError, match="captions.txt"):
        C.load_pairs("fake", size=8)
    with pytest.raises(ValueError, match="tuxpaint"):
        C.load_pairs("flickr", size=8)


def test_no_cache_builds_every_time(fake_source):
    src, builds, cache = fake_source
    C.load_pairs("fake", size=8, cache=False); C.load_pairs("fake", size=8, cache=False)
    assert len(builds) == 2 and not cache.exists()
