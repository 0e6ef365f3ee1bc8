"Bad inputs give clear errors that name the file."
import hashlib
import numpy as np
import pytest
from medfound.data import DataError, load_nifti, save_nifti, dataset_files, verify
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
