"""What the sandbox child does to itself before it imports torch or touches the model.

1. ``die_with_parent``: PR_SET_PDEATHSIG SIGKILL, so the child never outlives the worker process
   that started it (a pool process killed at the hard time limit or by the memory guard).
2. ``isolate_network``: a fresh, empty network namespace (not even loopback is up): nothing on
   127.0.0.1 (Redis, the API) or beyond is reachable. As root ``unshare(CLONE_NEWNET)``;
   unprivileged, a new user namespace makes that allowed.
3. ``landlock.restrict``: reads only beneath the read roots and the job's inputs, writes only in
   its work dir, no TCP bind/connect, no abstract unix sockets or signals outside its domain.

Standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

from worker.sandbox import landlock
from worker.sandbox.protocol import Ready, Request

PR_SET_PDEATHSIG = 1
CLONE_NEWNET, CLONE_NEWUSER = 0x40000000, 0x10000000

_libc = ctypes.CDLL(None, use_errno=True)


class ConfinementError(OSError):
    pass


def die_with_parent(parent_pid: int) -> None:
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise ConfinementError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if parent_pid and os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def isolate_network() -> str:
    """Move this process into a new, empty network namespace; return how."""
    if _libc.unshare(CLONE_NEWNET) == 0:
        return "netns"
    first = ctypes.get_errno()
    if first == errno.EPERM and _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return "userns+netns"
    err = ctypes.get_errno()
    raise ConfinementError(err, f"cannot create a network namespace: {os.strerror(first)} (as root), "
                                f"{os.strerror(err)} (with a user namespace)")


def confine(request: Request) -> Ready:
    """Everything above, in order; raises when any part cannot be set up (the caller fails closed)."""
    isolate_network()
    restriction = landlock.restrict(read=request.read, write=[request.work_dir], read_dir_only=request.list_only,
                                    read_write_files=request.read_write_files)
    return Ready(landlock_abi=restriction.abi, network_isolated=True, confined=True)
