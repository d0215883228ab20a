"""Linux Landlock through raw syscalls (ctypes): restrict this process, and all it starts, to the paths
given, with no TCP bind/connect and (ABI >= 6) no abstract unix sockets or signals outside its domain.

Standard library only: the sandbox child imports this before anything else.

    abi_version()                       0 when the kernel has no Landlock (or it is disabled)
    restrict(read=[...], write=[...])   irreversible for this process and its descendants

Rules name existing paths; a rule on a directory covers everything beneath it, a rule on a
file covers that file. Paths that do not exist are skipped (returned), never an error.
"""

from __future__ import annotations

import ctypes
import os
import stat
from dataclasses import dataclass

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

# filesystem rights, by the ABI that introduced them
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
# network rights (ABI 4)
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
# scopes (ABI 6)
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the only rights a rule on a file may carry
READ = READ_FILE | READ_DIR
WRITE = (WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM | TRUNCATE)


class LandlockError(OSError):
    pass


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(number: int, *args) -> int:
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"landlock syscall {number}: {os.strerror(err)}")
    return result


def abi_version() -> int:
    try:
        return _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except LandlockError:
        return 0


def handled_fs(abi: int) -> int:
    return FS_BY_ABI[max(k for k in FS_BY_ABI if k <= abi)]


@dataclass
class Restriction:
    abi: int
    handled_fs: int
    handled_net: int
    scoped: int
    skipped: list[str]


def restrict(*, read: list[str], write: list[str], read_dir_only: list[str] = (), read_write_files: list[str] = ()) -> Restriction:
    """Allow reads beneath ``read``, reads and writes beneath ``write``; ``read_dir_only``: listing only
    (names, no contents); ``read_write_files``: single files such as /dev/null. Everything else the
    kernel's ABI can express is denied: executing any file, TCP bind/connect, abstract unix sockets
    and signals outside the domain. Sealed with no_new_privs first (required, and it keeps setuid
    binaries from widening anything). Raises LandlockError when the kernel has no Landlock."""
    abi = abi_version()
    if abi < 1:
        raise LandlockError(95, "Landlock is not available on this kernel (or disabled at boot)")
    fs = handled_fs(abi)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else ctypes.sizeof(_RulesetAttr)  # older kernels know fewer fields
    ruleset = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    skipped: list[str] = []
    try:
        wanted = [(p, READ) for p in read] + [(p, READ | WRITE | (REFER if abi >= 2 else 0)) for p in write]
        wanted += [(p, READ_DIR) for p in read_dir_only] + [(p, READ_FILE | WRITE_FILE) for p in read_write_files]
        for path, rights in wanted:
            if not _add_rule(ruleset, path, rights & fs):
                skipped.append(path)
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise LandlockError(err, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(err)}")
        _syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return Restriction(abi=abi, handled_fs=fs, handled_net=net, scoped=scoped, skipped=skipped)


def _add_rule(ruleset: int, path: str, rights: int) -> bool:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS
        if not rights:
            return False
        rule = _PathBeneathAttr(rights, fd)
        _syscall(SYS_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0))
        return True
    finally:
        os.close(fd)
