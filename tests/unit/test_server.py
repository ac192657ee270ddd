"""The test server helper: ports outside the ephemeral range, and a new port when one was taken."""

from __future__ import annotations

import socket
import sys
import textwrap

from classifier.testing import server as server_module
from classifier.testing.server import Server, ephemeral_ports, free_port

# answers 200 on every path, on the --host and --port it is given
TINY_SERVER = textwrap.dedent(
    """
    import argparse, http.server
    parser = argparse.ArgumentParser()
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
    http.server.HTTPServer((args.host, args.port), Ok).serve_forever()
    """
)


def test_free_ports_are_outside_the_ephemeral_range():
    ephemeral = ephemeral_ports()
    for _ in range(50):
        port = free_port()
        assert port not in ephemeral
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_server_whose_port_was_taken_starts_again_on_another(tmp_path, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1], free_port()])
    monkeypatch.setattr(server_module, "free_port", lambda: next(ports))
    script = tmp_path / "tiny.py"
    script.write_text(TINY_SERVER)

    server = Server([sys.executable, str(script)], {}, tmp_path / "tiny.log", cwd=tmp_path)
    try:
        server.wait_ready(timeout=30)
        assert server.port != taken.getsockname()[1]
    finally:
        server.stop()
        taken.close()
