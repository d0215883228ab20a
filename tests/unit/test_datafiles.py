
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modelpress_core.datafiles import check_data_file
from modelpress_core.errors import InvalidUpload, UnsupportedUpload
from modelpress_core.zipsafety import ZipLimits
from worker.data import load_data


def check(path):
    return check_data_file("eval", path, max_tensors=10, max_parameters=10**6, zip_limits=ZipLimits())


def test_npz_and_safetensors_are_accepted_and_loaded(tmp_path):
    npz = tmp_path / "e.npz"
    np.savez(npz, inputs=np.ones((5, 3), np.float64), labels=np.arange(5))
    assert check(npz) == "npz"
    data = load_data("eval", npz, "npz", torch.float32)
    assert data.inputs.dtype == torch.float32 and data.labels.tolist() == [0, 1, 2, 3, 4]
    st = tmp_path / "e.safetensors"
    save_file({"inputs": torch.zeros(2, 3)}, str(st))
    assert check(st) == "safetensors"
    assert load_data("eval", st, "safetensors", torch.float32).labels is None


def test_object_arrays_and_wrong_names_are_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, inputs=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InvalidUpload, match="Python objects"):
        check(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(InvalidUpload, match="'inputs'"):
        check(other)
    text = tmp_path / "t.csv"
    text.write_text("1,2,3\n")
    with pytest.raises(UnsupportedUpload):
        check(text)


def test_labels_must_match_inputs(tmp_path):
    path = tmp_path / "e.npz"
    np.savez(path, inputs=np.ones((5, 3), np.float32), labels=np.arange(4))
    with pytest.raises(InvalidUpload, match="one per input"):
        load_data("eval", path, "npz", torch.float32)


def test_float_labels_are_regression_targets(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, inputs=np.ones((5, 3), np.float32), labels=np.linspace(0, 1, 10, dtype=np.float32).reshape(5, 2))
    data = load_data("eval", path, "npz", torch.float32)
    assert data.labels.is_floating_point() and data.labels.shape == (5, 2)
    np.savez(path, inputs=np.ones((5, 3), np.float32), labels=np.ones(4, np.float32))
    with pytest.raises(InvalidUpload, match="one row per input"):
        load_data("eval", path, "npz", torch.float32)
