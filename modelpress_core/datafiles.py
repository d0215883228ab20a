"""Data parts (``calibration``, ``train``, ``eval``), checked torch-free before they are stored.

Accepted: a numpy ``.npz`` (a zip of ``.npy`` entries, no object arrays) or a safetensors file,
holding ``inputs`` and optional ``labels``. The worker loads them again with
``numpy.load(allow_pickle=False)`` / safetensors, so nothing here or there unpickles.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from modelpress_core import intake
from modelpress_core.budget import InspectionBudget
from modelpress_core.errors import InvalidUpload, UnsafeUpload, UnsupportedUpload, UploadTooLarge
from modelpress_core.zipsafety import ZipLimits, check_zip

DATA_PARTS = ("calibration", "train", "eval")
ARRAYS = {"inputs", "labels"}


def check_data_file(
    part: str, path: Path, *, max_tensors: int, max_parameters: int, zip_limits: ZipLimits,
    budget: InspectionBudget | None = None,
) -> str:
    """Return the data format ('npz' or 'safetensors'); raise a problem naming the part otherwise.

    An ``.npz``'s entry names and count are checked from its central directory before anything
    inflates; a safetensors header may hold only the data arrays, so its size limit is that of a
    two-tensor header (``max_tensors`` only caps it further)."""
    budget = budget or zip_limits.budget()
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        try:
            names = check_zip(path, zip_limits, accept=lambda names: _accept_npz(part, names), budget=budget)
        except (InvalidUpload, UnsafeUpload, UploadTooLarge) as exc:
            raise _for_part(part, exc) from None
        with zipfile.ZipFile(path) as archive:
            for name in names:
                with archive.open(name) as entry:
                    _check_npy_header(part, name, entry)
        return "npz"
    try:
        if intake.sniff(path) != "safetensors":
            raise UnsupportedUpload(f"{part}: send a .npz or a safetensors file", part=part)
        header = _read_header(path, max_tensors=max_tensors, max_parameters=max_parameters, budget=budget)
    except (InvalidUpload, UploadTooLarge) as exc:
        raise _for_part(part, exc) from None
    _check_names(part, set(header.tensors))
    return "safetensors"


def _read_header(path: Path, *, max_tensors: int, max_parameters: int, budget: InspectionBudget | None = None):
    return intake.read_safetensors_header(
        path, max_tensors=min(max_tensors, len(ARRAYS)), max_parameters=max_parameters, budget=budget
    )


def _for_part(part: str, exc: InvalidUpload | UnsafeUpload | UploadTooLarge):
    """The same problem, its detail naming the data part."""
    if exc.detail.startswith(f"{part}: "):
        return exc
    return type(exc)(f"{part}: {exc.detail}", part=part, **{k: v for k, v in exc.extra.items() if k != "part"})


def _accept_npz(part: str, names: list[str]) -> None:
    """Before anything inflates: only ``inputs.npy`` and ``labels.npy`` (duplicates are refused earlier)."""
    if intake.zip_kind(names) != "npz":
        raise UnsupportedUpload(f"{part}: a zip that is not a numpy .npz (entries must be .npy arrays)", part=part)
    _check_names(part, {n[: -len(".npy")] for n in names})


def _check_names(part: str, arrays: set[str]) -> None:
    if "inputs" not in arrays or not arrays <= ARRAYS:
        shown = sorted(arrays)[:5]
        more = f" and {len(arrays) - len(shown)} more" if len(arrays) > len(shown) else ""
        raise InvalidUpload(
            f"{part}: expected arrays 'inputs' and optional 'labels', got {[n[:80] for n in shown]}{more}", part=part
        )


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
    return set(_read_header(path, max_tensors=max_tensors, max_parameters=max_parameters).tensors)
