"Bad inputs give clear errors that name the file."
import hashlib, io, os
import numpy as np
import pytest
import medfound.data
from medfound.data import (DataError, data_command, dataset_files, fetch, load_dicom_series, load_nifti, load_pair,
                           real_dataset_dir, save_nifti, verify)
from medfound.airways.atm22 import find_atm_cases, load_atm_case, atm_metrics


def test_truncated_nifti(tmp_path):
    p = tmp_path / "ATM_007_0000.nii.gz"
    save_nifti(np.random.rand(20, 20, 20).astype(np.float32), p)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(DataError, match="ATM_007_0000.nii.gz"):
        load_nifti(p)


def test_label_of_wrong_shape(tmp_path):
    (tmp_path / "imagesTr").mkdir(); (tmp_path / "labelsTr").mkdir()
    save_nifti(np.zeros((16, 16, 16), np.float32), tmp_path / "imagesTr/ATM_001_0000.nii.gz")
    save_nifti(np.zeros((16, 16, 12), np.uint8), tmp_path / "labelsTr/ATM_001_0000.nii.gz")
    (img, lab), = find_atm_cases(tmp_path)
    with pytest.raises(DataError, match=r"labelsTr/ATM_001_0000.nii.gz: label shape"):
        load_atm_case(img, lab)


def test_non_binary_label(tmp_path):
    (tmp_path / "imagesTr").mkdir(); (tmp_path / "labelsTr").mkdir()
    save_nifti(np.zeros((8, 8, 8), np.float32), tmp_path / "imagesTr/a.nii.gz")
    save_nifti(np.full((8, 8, 8), 3, np.uint8), tmp_path / "labelsTr/a.nii.gz")
    with pytest.raises(DataError, match="binary"):
        load_atm_case(*find_atm_cases(tmp_path)[0])


def test_missing_label_file(tmp_path):
    (tmp_path / "imagesTr").mkdir(); (tmp_path / "labelsTr").mkdir()
    save_nifti(np.zeros((8, 8, 8), np.float32), tmp_path / "imagesTr/ATM_002_0000.nii.gz")
    with pytest.raises(DataError, match="no label"):
        find_atm_cases(tmp_path)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "ATM22")):
        find_atm_cases(tmp_path / "ATM22")


def test_prediction_of_wrong_shape():
    gt = np.zeros((10, 10, 10), bool); gt[2:8, 5, 5] = True
    with pytest.raises(ValueError, match="shape"):
        atm_metrics(np.zeros((10, 10, 9)), gt)


def test_corrupt_and_missing_cached_files(data_home):
    good = b"0123456789"
    m = {"toy": {"chapters": ["atm22"], "real": {}, "standin": {"kind": "pypi", "package": "x", "version": "1",
         "files": [{"path": "d/a.bin", "sha256": hashlib.sha256(good).hexdigest()}]}}}
    with pytest.raises(DataError, match=r"missing: .*toy/d/a.bin[\s\S]*medfound data fetch toy"):
        dataset_files("toy", m)
    (data_home / "toy/d").mkdir(parents=True)
    (data_home / "toy/d/a.bin").write_bytes(good[:-1] + b"X")
    with pytest.raises(DataError, match=r"corrupt .*toy/d/a.bin"):
        dataset_files("toy", m)
    (data_home / "toy/d/a.bin").write_bytes(good)
    assert verify("toy", m) == [] and dataset_files("toy", m)["d/a.bin"].read_bytes() == good


# ---- volumes that would fail later, deep inside a library ------------------------------------------------

@pytest.mark.parametrize("arr, problem", [
    (np.where(np.arange(512).reshape(8, 8, 8) == 77, np.nan, 0.0), r"1 NaN and 0 infinite voxel\(s\), the first at index \(1, 1, 5\)"),
    (np.full((4, 4, 4), -np.inf), r"0 NaN and 64 infinite voxel\(s\)"),
    (np.zeros((16, 16)), r"2 dimension\(s\), shape \(16, 16\); expected a 3-D volume"),
    (np.zeros((8, 8, 8, 3)), r"4 dimension\(s\), shape \(8, 8, 8, 3\)"),
    (np.zeros((0, 8, 8)), r"empty array"),
])
def test_bad_ct_volume_is_named(tmp_path, arr, problem):
    p = tmp_path / "CT_042.nii.gz"
    save_nifti(arr.astype(np.float32), p)
    with pytest.raises(DataError, match=rf"CT_042.nii.gz: {problem}"):
        load_nifti(p)


def test_trailing_unit_axis_is_dropped(tmp_path):
    save_nifti(np.ones((5, 6, 7, 1), np.float32), tmp_path / "v.nii.gz")
    assert load_nifti(tmp_path / "v.nii.gz")[0].shape == (5, 6, 7)


def test_label_shape_and_spacing_must_match_the_image(tmp_path):
    save_nifti(np.zeros((16, 16, 16), np.float32), tmp_path / "img.nii.gz", (0.7, 0.7, 1.0))
    save_nifti(np.zeros((16, 16, 12), np.uint8), tmp_path / "lab.nii.gz", (0.7, 0.7, 1.0))
    with pytest.raises(DataError, match=r"lab.nii.gz \(image img.nii.gz\): label shape \(16, 16, 12\) differs from the image's \(16, 16, 16\)"):
        load_pair(tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz")
    save_nifti(np.zeros((16, 16, 16), np.uint8), tmp_path / "lab.nii.gz", (0.7, 0.7, 2.0))
    with pytest.raises(DataError, match=r"label spacing \(0.7, 0.7, 2.0\) mm differs from the image's \(0.7, 0.7, 1.0\) mm"):
        load_pair(tmp_path / "img.nii.gz", tmp_path / "lab.nii.gz")


def test_flipped_bit_in_gzip_stream_is_caught(tmp_path):
    p = tmp_path / "ATM_011_0000.nii.gz"
    save_nifti(np.random.default_rng(1).normal(size=(20, 20, 20)).astype(np.float32), p)
    raw = bytearray(p.read_bytes()); raw[len(raw) // 2] ^= 0x10
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="ATM_011_0000.nii.gz: corrupt gzip|ATM_011_0000.nii.gz: cannot read"):
        load_nifti(p)


def test_empty_dicom_folder(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path}: cannot read DICOM"):
        load_dicom_series(tmp_path)


# ---- names and places ---------------------------------------------------------------------------------------

def test_unknown_dataset_lists_the_known_ones(data_home):
    for f in (fetch, verify, dataset_files, real_dataset_dir):
        with pytest.raises(DataError, match=r"unknown dataset 'fashion_mist'; known datasets: .*fashion_mnist"):
            f("fashion_mist")
    out = io.StringIO()
    assert data_command("verify", ["fashion_mist"], out=out) == 2 and "known: " in out.getvalue()


def _no_download(*a, **k): raise AssertionError("downloaded although the cache cannot be written")


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_unwritable_cache_fails_before_download(tmp_path, monkeypatch, where):
    (tmp_path / "f").write_text("x")
    cache = tmp_path / "f" / "data" if where == "under_a_file" else tmp_path / "f"
    monkeypatch.setenv("MEDFOUND_DATA", str(cache))
    monkeypatch.setattr(medfound.data, "_download", _no_download)
    with pytest.raises(DataError, match=rf"cannot write to the data cache {cache}.*set MEDFOUND_DATA to a writable folder \(now '{cache}'\)"):
        fetch("fashion_mnist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_read_only_cache_fails_before_download(tmp_path, monkeypatch):
    ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o500)
    monkeypatch.setenv("MEDFOUND_DATA", str(ro))
    monkeypatch.setattr(medfound.data, "_download", _no_download)
    try:
        with pytest.raises(DataError, match="cannot write to the data cache"):
            fetch("fashion_mnist")
    finally: ro.chmod(0o700)
