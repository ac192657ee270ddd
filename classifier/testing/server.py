"""Start a server in its own process group, wait until it answers, and stop all of it."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil


def ephemeral_ports() -> range:
    """The ports the kernel hands to outgoing connections (Linux's default when unreadable)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A port free now and outside the ephemeral range.

    A port the kernel handed out as free (bind to 0) comes from the ephemeral range, so any
    outgoing connection may take it before the server binds it; one of ours failed that way in CI.
    """
    ephemeral = ephemeral_ports()
    for _ in range(1000):
        port = random.randrange(10000, 65536)
        if port in ephemeral:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as probe:  # no room outside the ephemeral range: the kernel's pick
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _poller(timeout: float = 2) -> httpx.Client:
    """One client for all the polls of a wait. `httpx.get` makes a client a call, and loading
    the CA bundle for it costs 54 ms of CPU: polled every 0.1 s, a third of a core taken from
    the server it waits for (the demo's training in `bash scripts/serve.sh` lost a sixth of its
    steps to it)."""
    return httpx.Client(timeout=timeout)


class Server:
    """`command` plus `--host 127.0.0.1 --port <free port>`, logging to `log`."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.command, self.env, self.log, self.cwd = command, env, log, cwd
        self.started = time.perf_counter()
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*self.command, "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so that every worker can be killed
        )

    def wait_ready(self, timeout: float = 240, path: str = "/readyz") -> float:
        """Seconds from start until `path` answers 200; on another port if its was taken."""
        with _poller() as poller:
            return self._wait_ready(poller, timeout, path)

    def _wait_ready(self, poller: httpx.Client, timeout: float, path: str) -> float:
        deadline = time.monotonic() + timeout
        restarts = 3
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.log.read_text()
                # another process may still bind the port between our check and the server's
                if "Address already in use" in output and restarts:
                    restarts -= 1
                    with contextlib.suppress(ProcessLookupError):  # anything it left behind
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self._start()
                    continue
                raise RuntimeError(f"server exited:\n{output[-4000:]}")
            try:
                if poller.get(f"{self.url}{path}").status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready in {timeout}s:\n{self.log.read_text()[-4000:]}")

    def wait_compiled(self, timeout: float = 600) -> float:
        """Seconds from start until the service's compiled model answers (it compiles in the
        background once ready, the eager model answering meanwhile); its /info `compile` then."""
        deadline = time.monotonic() + timeout
        with _poller(timeout=30) as poller:
            while time.monotonic() < deadline:
                compiled = poller.get(f"{self.url}/info").json()["compile"]
                if not compiled["compiling"]:
                    return time.perf_counter() - self.started
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited:\n{self.log.read_text()[-4000:]}")
                time.sleep(0.2)
        raise TimeoutError(f"not compiled in {timeout}s:\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            # BentoML's supervisor starts each worker in a session of its own: find them first
            try:
                children = psutil.Process(self.process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for child in children:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.kill()
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
