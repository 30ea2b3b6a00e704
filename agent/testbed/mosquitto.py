"""Start a real mosquitto on a free loopback port with a generated configuration."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

INSTALL_HINT = "install it with: sudo apt-get install -y mosquitto"


class BrokerError(RuntimeError):
    """mosquitto is missing or would not start."""


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None (Debian puts it in /usr/sbin)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _has_user_line(extra: str) -> bool:
    # mosquitto refuses a second "user" line, so a caller's own one wins.
    return any(line.strip().startswith("user ") for line in extra.splitlines())


class Mosquitto:
    """One mosquitto process on 127.0.0.1, its config, persistence and log in ``workdir``.

    ``extra`` lines are appended to the listener's configuration (TLS, ACLs, size limits).
    ``stop()`` and ``start()`` can be called again to restart the broker on the same port
    (with its persistence, when ``persistence`` is true).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        persistence: bool = True,
        extra: str = "",
        allow_anonymous: bool = True,
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError(f"mosquitto not found; {INSTALL_HINT}")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.persistence = persistence
        self.extra = extra
        self.allow_anonymous = allow_anonymous
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> None:
        """Write the broker configuration file."""
        lines = [
            # Started as root, mosquitto drops to user "mosquitto", which cannot write the
            # persistence and log files in a root-owned temporary folder.
            "user root" if os.geteuid() == 0 and not _has_user_line(self.extra) else "",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
            self.extra,
        ]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start the broker and wait until it accepts connections."""
        self.write_config()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise BrokerError(f"mosquitto exited at start: {err.strip()} {log.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout} s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM lets it save persistence; ``kill`` does not)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
