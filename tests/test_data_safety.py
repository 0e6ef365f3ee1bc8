"Data that cannot escape the cache or rot unseen: manifest paths, package links, archives, gzip CRC, derived caches."
import hashlib, io, os, tarfile, zipfile
from pathlib import Path

import numpy as np
import pytest

import medfound.data as D
from medfound.data import DataError


def _sha(b: bytes) -> str: return hashlib.sha256(b).hexdigest()


def _manifest(*files, kind="pypi"):
    "A one-dataset manifest 'toy' listing `files` = (path, content)."
    return {"toy": {"chapters": ["x"], "real": {"folder": "TOY"},
                    "standin": {"kind": kind, "package": "toy", "version": "1",
                                "files": [{"path": p, "sha256": _sha(c)} for p, c in files]}}}


def _tgz(path: Path, members) -> Path:
    "A .tgz of `members`: (name, bytes) for a file, (name, ('sym'|'hard', target)) for a link."
    with tarfile.open(path, "w:gz") as t:
        for name, v in members:
            ti = tarfile.TarInfo(name)
            if isinstance(v, tuple):
                ti.type = tarfile.SYMTYPE if v[0] == "sym" else tarfile.LNKTYPE
                ti.linkname = v[1]; t.addfile(ti)
            else:
                ti.size = len(v); t.addfile(ti, io.BytesIO(v))
    return path


@pytest.fixture
def package(monkeypatch):
    "Serve the next fetch from a hand-made archive; records how often the registry was asked."
    state = {"members": [], "calls": 0, "zip": False}
    def fake_download(kind, name, version, tmp):
        state["calls"] += 1
        if state["zip"]:
            p = tmp / "toy.whl"
            with zipfile.ZipFile(p, "w") as z:
                for n, v in state["members"]: z.writestr(n, v)
            return p
        return _tgz(tmp / "toy.tgz", state["members"])
    monkeypatch.setattr(D, "_download", fake_download)
    return state


def _files_under(p: Path) -> list[str]:
    return sorted(str(q.relative_to(p)) for q in p.rglob("*") if q.is_file()) if p.exists() else []


# ---- manifest paths ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, why", [("../../outside/x", "has a '..'"), ("a/../../../outside/x", "has a '..'"),
                                        ("/tmp/outside/x", "absolute"), ("", "empty")])
def test_manifest_path_escape_is_refused_before_download(data_home, package, entry, why):
    package["members"] = [("outside/x", b"evil")]
    with pytest.raises(DataError, match=rf"toy: manifest entry: unsafe path {entry!r} \({why}"):
        D.fetch("toy", _manifest((entry, b"evil")))
    assert package["calls"] == 0                                  # refused before anything was downloaded
    assert not (data_home.parent / "outside").exists() and _files_under(data_home) == []
    with pytest.raises(DataError, match="unsafe path"):
        D.verify("toy", _manifest((entry, b"evil")))


def test_validate_manifest_lists_unsafe_paths():
    m = {"datasets": {"../up": {"chapters": ["a"], "real": dict(name="n", url="u", licence="l", size="s", layout="l",
                                                             folder="/abs"),
                                "standin": {"kind": "apt", "package": "p", "version": "1",
                                            "files": [{"path": "../../outside/x", "sha256": "0" * 64}]}}}}
    with pytest.raises(DataError) as e:
        D.validate_manifest(m)
    msg = str(e.value)
    assert "'../up': a dataset name must be one folder name" in msg
    assert "real.folder: unsafe path '/abs' (absolute)" in msg
    assert "unsafe path '../../outside/x' (has a '..' component)" in msg


def test_link_planted_in_the_cache_does_not_carry_writes_out(data_home, package, tmp_path):
    outside = tmp_path / "outside"; outside.mkdir()
    (data_home / "toy").mkdir(parents=True)
    (data_home / "toy" / "d").symlink_to(outside)                 # the cache folder itself holds a link
    package["members"] = [("d/a.bin", b"data")]
    with pytest.raises(DataError, match=r"toy: manifest entry: 'd/a.bin' leads to .*outside.*symbolic link"):
        D.fetch("toy", _manifest(("d/a.bin", b"data")))
    assert package["calls"] == 0 and _files_under(outside) == []


def test_real_folder_outside_the_cache_is_refused(data_home):
    m = _manifest(("a", b"x")); m["toy"]["real"]["folder"] = "../../home"
    with pytest.raises(DataError, match=r"toy.real.folder: unsafe path '../../home'"):
        D.real_dataset_dir("toy", m)


# ---- links and members inside the package -----------------------------------------------------------------

@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../etc/passwd", "../../.."])
def test_package_symlink_to_a_host_file_is_refused(data_home, package, target):
    package["members"] = [("./pkg/", b""), ("./pkg/data.txt", ("sym", target))]
    host = Path("/etc/passwd").read_bytes()
    with pytest.raises(DataError, match=rf"entry 'pkg/data.txt'.*link to '{target}', which leaves the package"):
        D.fetch("toy", _manifest(("pkg/data.txt", host)))
    assert _files_under(data_home) == []                          # no copy of the host file, not even a partial one


def test_package_hard_link_out_of_the_package_is_refused(data_home, package):
    package["members"] = [("pkg/data.txt", ("hard", "../etc/passwd"))]
    with pytest.raises(DataError, match="link to '../etc/passwd', which leaves the package"):
        D.fetch("toy", _manifest(("pkg/data.txt", b"x")))


def test_links_inside_the_package_are_followed(data_home, package):
    package["members"] = [("pkg/real.txt", b"payload"), ("pkg/sub/rel.txt", ("sym", "../real.txt")),
                          ("pkg/hard.txt", ("hard", "./pkg/real.txt"))]
    root = D.fetch("toy", _manifest(("pkg/sub/rel.txt", b"payload"), ("pkg/hard.txt", b"payload")))
    assert (root / "pkg/sub/rel.txt").read_bytes() == b"payload" and not (root / "pkg/sub/rel.txt").is_symlink()
    assert (root / "pkg/hard.txt").read_bytes() == b"payload"


@pytest.mark.parametrize("as_zip", [False, True])
@pytest.mark.parametrize("bad", ["../../evil.sh", "/etc/cron.d/evil"])
def test_archive_with_unsafe_members_is_refused(data_home, package, as_zip, bad):
    package["zip"] = as_zip
    package["members"] = [("pkg/a.txt", b"ok"), (bad, b"#!/bin/sh\n")]
    with pytest.raises(DataError, match=rf"toy: pypi package toy 1: the archive has unsafe member names.*{bad!r}"):
        D.fetch("toy", _manifest(("pkg/a.txt", b"ok")))
    assert _files_under(data_home) == [] and not (data_home.parent / "evil.sh").exists()


def test_package_file_with_another_hash_leaves_nothing(data_home, package):
    package["members"] = [("a.txt", b"changed")]
    with pytest.raises(DataError, match=r"entry 'a.txt': sha256 .* differs from the manifest's"):
        D.fetch("toy", _manifest(("a.txt", b"original")))
    assert _files_under(data_home) == []                          # the temporary .part file is gone too


def test_missing_file_in_package(data_home, package):
    package["members"] = [("a.txt", b"x")]
    with pytest.raises(DataError, match=r"entry 'b.txt': the package has no file 'b.txt'"):
        D.fetch("toy", _manifest(("b.txt", b"x")))


def test_fetch_repairs_a_rotten_cache_file(data_home, package):
    package["members"] = [("a.txt", b"payload")]
    m = _manifest(("a.txt", b"payload"))
    root = D.fetch("toy", m)
    (root / "a.txt").write_bytes(b"paYload")
    assert "corrupt" in D.verify("toy", m)[0]
    D.fetch("toy", m)
    assert D.verify("toy", m) == [] and package["calls"] == 2


# ---- compressed volumes whose bits flipped ----------------------------------------------------------------

def test_bit_flips_in_nii_gz_never_load_as_different_voxels(tmp_path):
    "Every single-bit flip either raises a DataError naming the file or (gzip header) loads the very same voxels."
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:24, :32, :32]
    ct = (-1000 + 1000 * ((x - 16) ** 2 + (y - 16) ** 2 < 100) + rng.normal(0, 20, (24, 32, 32))).astype(np.int16)
    p = tmp_path / "ct.nii.gz"; D.save_nifti(ct, p)
    raw, (ref, _) = p.read_bytes(), D.load_nifti(p)
    positions = list(range(10)) + rng.integers(10, len(raw), 190).tolist()    # the 10 header bytes + 190 in the stream
    caught = same = 0
    for t, pos in enumerate(positions):
        b = bytearray(raw); b[pos] ^= 1 << int(rng.integers(8))
        q = tmp_path / f"flip{t}.nii.gz"; q.write_bytes(bytes(b))
        try: arr, _ = D.load_nifti(q)
        except DataError as e:
            assert q.name in str(e); caught += 1; continue
        assert pos < 10 and np.array_equal(arr, ref), f"flip at byte {pos} loaded different voxels silently"
        same += 1
    print(f"{len(positions)} flips: {caught} raised, {same} loaded identical voxels (gzip header)")
    assert caught >= 190                                          # every flip in the compressed stream or trailer


# ---- derived caches ----------------------------------------------------------------------------------------

def test_derived_cache_rebuilds_on_changed_inputs_and_keeps_the_old_one_on_failure(tmp_path):
    src = tmp_path / "in"; src.mkdir(); (src / "a.txt").write_text("one"); (src / "b.txt").write_text("two")
    calls = []
    def build(p):
        calls.append(1)
        p.write_text("|".join(f.read_text() for f in sorted(src.iterdir())))
    get = lambda: D.derived_cache("cache/joined.txt", [src], build, params={"v": 1}, root=tmp_path / "data")
    assert get().read_text() == "one|two" and get().read_text() == "one|two" and len(calls) == 1
    (src / "b.txt").write_text("TWO")                             # same size, same folder: the hash changes
    assert get().read_text() == "one|TWO" and len(calls) == 2
    def broken(p): p.write_text("half"); raise RuntimeError("disk full")
    (src / "a.txt").write_text("ONE")
    with pytest.raises(RuntimeError, match="disk full"):
        D.derived_cache("cache/joined.txt", [src], broken, params={"v": 1}, root=tmp_path / "data")
    out = tmp_path / "data/cache"                                 # the old cache and its record stay, no leftovers
    assert (out / "joined.txt").read_text() == "one|TWO" and sorted(os.listdir(out)) == ["joined.txt", "joined.txt.inputs.json"]
    assert get().read_text() == "ONE|TWO" and len(calls) == 3
    with pytest.raises(DataError, match="no such file"):
        D.derived_cache("cache/joined.txt", [tmp_path / "nope"], build, root=tmp_path / "data")
    with pytest.raises(DataError, match="derived cache: unsafe path '../x'"):
        D.derived_cache("../x", [src], build, root=tmp_path / "data")


def test_derived_cache_of_a_folder(tmp_path):
    src = tmp_path / "in.txt"; src.write_text("abc")
    def build(p):
        p.mkdir(); (p / "upper.txt").write_text(src.read_text().upper())
    c = D.derived_cache("d", [src], build, root=tmp_path / "data")
    assert (c / "upper.txt").read_text() == "ABC"
    src.write_text("xyz")
    c = D.derived_cache("d", [src], build, root=tmp_path / "data")
    assert (c / "upper.txt").read_text() == "XYZ" and sorted(os.listdir(tmp_path / "data")) == ["d", "d.inputs.json"]
