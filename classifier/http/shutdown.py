"""A stopping server refuses new connections at once instead of leaving them in the backlog."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading


def refuse_new_connections_on_sigterm(argv: list[str] = sys.argv) -> None:
    """On SIGTERM, stop the kernel from queueing new connections for this server.

    uvicorn stops accepting and lets the requests in flight finish, but BentoML's supervisor
    keeps the listening socket open until its workers have exited, so during that drain new
    clients would wait in the kernel's backlog for nothing and then be reset. Shutting down the
    socket's reading side makes them refused at once (or reset, if they came in the instant
    before), as a load balancer expects of a stopping backend; none is served. The socket is
    the whole server's, shared by every worker: SIGTERM is for stopping the server, never one
    worker. Not in development mode, where `--reload` restarts workers on the same socket.
    """
    if "--fd" not in argv or "--development-mode" in argv:
        return  # not a `bentoml serve` worker
    listener = socket.socket(fileno=os.dup(int(argv[argv.index("--fd") + 1])))
    previous = signal.getsignal(signal.SIGTERM)

    def refuse() -> None:
        with contextlib.suppress(OSError):  # another worker got there first
            listener.shutdown(socket.SHUT_RD)

    def on_sigterm(signum, frame) -> None:
        # a moment later: uvicorn first stops accepting, so no accepted connection is cut
        threading.Timer(0.3, refuse).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
