"""The upload scanner walks every pickle of a TorchScript archive and refuses every opcode that hides an import.

Pickles are written by hand here (opcode by opcode), so each test names exactly the opcode it means.
"""

from __future__ import annotations

import io
import zipfile

import pytest

from modelpress_core import intake
from modelpress_core.errors import UnsafeUpload
from modelpress_core.picklescan import FORBIDDEN_OPCODES, check_pickle
from tests.zips import EVIL_PICKLE, rezip, torchscript_bytes

ARCHIVE = torchscript_bytes()
PICKLES_IN_ARCHIVE = [n for n in zipfile.ZipFile(io.BytesIO(ARCHIVE)).namelist() if n.endswith((".pkl", ".debug_pkl"))]

# Each names only an allowlisted global (collections.OrderedDict), so only the opcode itself can be the reason.
HIDING_OPCODES = {
    # protocol 4: SHORT_BINUNICODE 'collections', MEMOIZE, SHORT_BINUNICODE 'OrderedDict', MEMOIZE, STACK_GLOBAL, EMPTY_TUPLE, REDUCE, STOP
    "STACK_GLOBAL": b"\x80\x04\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93)R.",
    # protocol 0: MARK, INST collections OrderedDict, STOP
    "INST": b"(icollections\nOrderedDict\n.",
    # protocol 1: MARK, GLOBAL collections OrderedDict, OBJ, STOP
    "OBJ": b"(ccollections\nOrderedDict\no.",
}
ALLOWED = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01."  # the same call, by GLOBAL: accepted


def test_the_hand_written_pickles_cover_every_forbidden_opcode():
    assert set(HIDING_OPCODES) == FORBIDDEN_OPCODES


def test_an_allowlisted_global_by_global_is_accepted():
    check_pickle(ALLOWED, "data.pkl")


@pytest.mark.parametrize("opcode", sorted(HIDING_OPCODES))
def test_each_forbidden_opcode_is_refused_even_with_an_allowed_name(opcode):
    with pytest.raises(UnsafeUpload, match=f"pickle opcode {opcode} is not accepted"):
        check_pickle(HIDING_OPCODES[opcode], "data.pkl")


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("torch", "load"),
                                          ("torch._utils", "_rebuild_tensor_v2x"), ("__torch__x", "Evil")])
def test_a_global_outside_the_allowlist_is_refused(module, name):
    data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00)Rq\x01."
    with pytest.raises(UnsafeUpload, match=f"{module} {name}"):
        check_pickle(data, "data.pkl")


def test_the_archive_holds_the_pickles_this_test_replaces():
    names = {n.split("/", 1)[1] for n in PICKLES_IN_ARCHIVE}
    assert {"data.pkl", "constants.pkl"} <= names and any(n.endswith(".debug_pkl") for n in names)


@pytest.mark.parametrize("entry", PICKLES_IN_ARCHIVE)
@pytest.mark.parametrize("payload", ["EVIL_GLOBAL", *sorted(HIDING_OPCODES)])
def test_every_pickle_in_the_archive_is_scanned(tmp_path, entry, payload):
    bad = EVIL_PICKLE if payload == "EVIL_GLOBAL" else HIDING_OPCODES[payload]
    path = tmp_path / "model.pt"
    path.write_bytes(rezip(ARCHIVE, replace={entry: bad}))
    with pytest.raises(UnsafeUpload) as info:
        intake.sniff(path)
    assert entry in str(info.value.detail)


def test_an_extra_pickle_in_the_archive_is_scanned(tmp_path):
    root = PICKLES_IN_ARCHIVE[0].split("/", 1)[0]
    path = tmp_path / "model.pt"
    path.write_bytes(rezip(ARCHIVE, add={f"{root}/extra.pkl": EVIL_PICKLE}))
    with pytest.raises(UnsafeUpload, match="extra.pkl"):
        intake.sniff(path)


def test_the_untampered_archive_passes(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(ARCHIVE)
    assert intake.sniff(path) == "torchscript"
