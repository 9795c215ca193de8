"""A real mosquitto broker for tests.

    from tests.mosquitto import mosquitto  # noqa: F401  (the pytest fixture)

    def test_x(mosquitto):
        mosquitto.port, mosquitto.host     # 127.0.0.1 and a free port
        mosquitto.stop(); mosquitto.start()  # same port again: broker restart

or, without pytest: ``with Mosquitto(tmp_dir) as broker: ...``.

A missing mosquitto binary is a test FAILURE, never a skip: CI installs it
(apt-get install mosquitto) and a silently skipped MQTT suite tests nothing.
Set $MOSQUITTO to use a binary outside $PATH and the usual sbin directories.

The broker listens on 127.0.0.1 only, allows anonymous clients, keeps no
persistence file (a restart forgets retained messages, like a crash of a
broker without persistence would) and logs to a file in its directory,
whose tail is included in start-up errors. With persistence=True it keeps
its database in its directory instead, saved at a clean stop: persistent
sessions and their queued QoS 1 messages survive a restart, as in a
production broker (docs/design.md, "Push notices and offers").
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto",
               "/usr/local/opt/mosquitto/sbin/mosquitto")


def find_mosquitto() -> str:
    """Path of the mosquitto binary; raises RuntimeError (a failure, not a skip) if absent."""
    explicit = os.environ.get("MOSQUITTO")
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise RuntimeError(f"$MOSQUITTO={explicit!r} is not an executable file")
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(
        "mosquitto is not installed; the MQTT tests need a real broker. "
        "Install it (Debian/Ubuntu: apt-get install mosquitto; macOS: brew install mosquitto) "
        "or point $MOSQUITTO at the binary."
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Mosquitto:
    def __init__(self, directory: str | os.PathLike[str] | None = None, *, port: int | None = None,
                 host: str = "127.0.0.1", persistence: bool = False) -> None:
        self.binary = find_mosquitto()
        self._own_dir = directory is None
        self.directory = Path(directory if directory is not None else tempfile.mkdtemp(prefix="mosquitto-"))
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.config_path = self.directory / "mosquitto.conf"
        self.log_path = self.directory / "mosquitto.log"
        # As root, a persistent broker stays root: the "mosquitto" user could not write a private temp dir.
        stored = (f"persistence true\npersistence_location {self.directory}/\n"
                  + ("user root\n" if os.geteuid() == 0 else "")) if persistence else "persistence false\n"
        self.config_path.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            + stored +
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start the broker and wait until it accepts TCP connections."""
        if self.running:
            raise RuntimeError("mosquitto is already running")
        # Log via our own file descriptor: under root mosquitto drops privileges to its
        # own user, which could not open a file in a private temp directory.
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config_path)],
                                            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise RuntimeError(f"mosquitto exited with code {code} during start-up on port {self.port}:\n"
                                   f"{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not accept connections on {self.host}:{self.port} "
                                       f"within {timeout}s:\n{self._log_tail()}") from None
                time.sleep(0.02)
                continue
            if self.process.poll() is None:  # the listener is ours, not a stranger's on the same port
                return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout`)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """SIGKILL the broker (an abrupt crash)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Create (not start) brokers in tmp dirs; every one is stopped at teardown."""
    brokers: list[Mosquitto] = []

    def make(port: int | None = None, persistence: bool = False) -> Mosquitto:
        directory = tmp_path / f"mosquitto-{len(brokers)}"
        directory.mkdir()
        broker = Mosquitto(directory, port=port, persistence=persistence)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


@pytest.fixture
def mosquitto(mosquitto_factory) -> Mosquitto:  # noqa: F811
    """A running broker on 127.0.0.1:<free port>."""
    return mosquitto_factory().start()
