"""Test-only entry: ``python -P -m tests.integration.sandbox_net_child MODE PORT WORK_DIR``.

Confines itself with the sandbox's own functions (MODE ``on``: ``confine.confine`` with the read roots
a job gets; ``netns``: only the network namespace; ``landlock``: only Landlock; ``off``: nothing),
then tries to talk to a server on 127.0.0.1:PORT, and prints what happened as JSON."""

from __future__ import annotations

import json
import socket
import sys

from worker.sandbox import landlock, policy
from worker.sandbox.confine import confine, isolate_network
from worker.sandbox.protocol import Request


def main(mode: str, port: int, work_dir: str) -> None:
    request = Request(spec={}, model_path="", data={}, work_dir=work_dir, warmup=0, runs=0, input_sha256="", data_sha256={},
                      threads=1, read=policy.read_roots(), list_only=policy.listing_roots(),
                      read_write_files=list(policy.SYSTEM_READ_WRITE_FILES))
    if mode == "on":
        confine(request)
    elif mode == "netns":
        isolate_network()
    elif mode == "landlock":
        landlock.restrict(read=request.read, write=[work_dir])
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"PING\r\n")
            outcome = {"connected": True, "reply": conn.recv(100).decode(errors="replace")}
    except OSError as exc:
        outcome = {"connected": False, "error": f"{type(exc).__name__}: {exc.strerror or exc}"}
    print(json.dumps(outcome))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
