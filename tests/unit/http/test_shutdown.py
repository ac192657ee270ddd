"""On SIGTERM a worker stops the kernel from queueing new connections for the server."""

from __future__ import annotations

import signal
import socket
import time

from classifier.http.shutdown import refuse_new_connections_on_sigterm


def test_after_sigterm_new_connections_are_refused_and_the_previous_handler_runs():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    calls = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    try:
        refuse_new_connections_on_sigterm(["worker", "--fd", str(listener.fileno())])
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # accepted before
        signal.raise_signal(signal.SIGTERM)
        time.sleep(0.6)  # the handler shuts the socket down 0.3 s later
        refused = False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            refused = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
    assert calls == [signal.SIGTERM], "uvicorn's own handler still runs"
    assert refused


def test_nothing_happens_outside_a_bentoml_worker():
    before = signal.getsignal(signal.SIGTERM)
    refuse_new_connections_on_sigterm(["bentoml", "serve"])
    refuse_new_connections_on_sigterm(["worker", "--fd", "3", "--development-mode"])
    assert signal.getsignal(signal.SIGTERM) is before
