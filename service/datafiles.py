"""Data parts (``calibration``, ``train``, ``eval``), checked torch-free before they are stored.

Accepted: a numpy ``.npz`` (a zip of ``.npy`` entries, no object arrays) or a safetensors file,
holding ``inputs`` and optional ``labels``. The worker loads them again with
``numpy.load(allow_pickle=False)`` / safetensors, so nothing here or there unpickles.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from service import intake
from service.domain.errors import InvalidUpload, UnsupportedUpload
from service.zipsafety import ZipLimits, check_zip

DATA_PARTS = ("calibration", "train", "eval")
ARRAYS = {"inputs", "labels"}


def check_data_file(part: str, path: Path, *, max_tensors: int, max_parameters: int, zip_limits: ZipLimits) -> str:
    """Return the data format ('npz' or 'safetensors'); raise a problem naming the part otherwise."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        names = check_zip(path, zip_limits)
        if intake.zip_kind(names) != "npz":
            raise UnsupportedUpload(f"{part}: a zip that is not a numpy .npz (entries must be .npy arrays)", part=part)
        arrays = {n[: -len(".npy")] for n in names}
        _check_names(part, arrays)
        with zipfile.ZipFile(path) as archive:
            for name in names:
                with archive.open(name) as entry:
                    _check_npy_header(part, name, entry)
        return "npz"
    try:
        if intake.sniff(path) != "safetensors":
            raise UnsupportedUpload(f"{part}: send a .npz or a safetensors file", part=part)
    except InvalidUpload as exc:
        raise InvalidUpload(f"{part}: {exc.detail}", part=part) from None
    header = intake.read_safetensors_header(path, max_tensors=max_tensors, max_parameters=max_parameters)
    _check_names(part, set(header.tensors))
    return "safetensors"


def _check_names(part: str, arrays: set[str]) -> None:
    if "inputs" not in arrays or not arrays <= ARRAYS:
        raise InvalidUpload(f"{part}: expected arrays 'inputs' and optional 'labels', got {sorted(arrays)}", part=part)


def _check_npy_header(part: str, name: str, entry) -> None:
    try:
        version = np.lib.format.read_magic(entry)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(entry)
        elif version == (2, 0):
            _, _, dtype = np.lib.format.read_array_header_2_0(entry)
        else:
            raise ValueError(f".npy format version {version} is not accepted")
    except ValueError as exc:
        raise InvalidUpload(f"{part}: {name} is not a valid .npy array ({exc})", part=part) from None
    if dtype.hasobject:
        raise InvalidUpload(f"{part}: {name} holds Python objects (a pickle); send numeric arrays", part=part)


def array_names(path: Path, fmt: str, *, max_tensors: int, max_parameters: int) -> set[str]:
    """The arrays a checked data file holds (``inputs``, maybe ``labels``), read from its directory/header only."""
    if fmt == "npz":
        with zipfile.ZipFile(path) as archive:
            return {n[: -len(".npy")] for n in archive.namelist()}
    return set(intake.read_safetensors_header(path, max_tensors=max_tensors, max_parameters=max_parameters).tensors)
