"""Start a throwaway PostgreSQL server on a free 127.0.0.1 port (tests, benchmarks, the demo).

Uses Debian's server binaries (``apt-get install -y postgresql``, found under
``/usr/lib/postgresql/<major>/bin``). initdb refuses to run as root, so when we are root the
server runs as the ``postgres`` system user (``runuser``) in a data folder it owns.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from agent.testbed.mosquitto import free_port

INSTALL_HINT = "install it with: sudo apt-get install -y postgresql"


class PgServerError(RuntimeError):
    """PostgreSQL is missing or would not start."""


def find_pg_bin() -> Path | None:
    """The newest Debian PostgreSQL server bin folder, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


class PgServer:
    """One postgres process; ``dsn`` connects as the superuser ``postgres`` over TCP."""

    def __init__(self) -> None:
        """Find the binaries; nothing is started yet."""
        bindir = find_pg_bin()
        if bindir is None:
            raise PgServerError(f"PostgreSQL server binaries not found; {INSTALL_HINT}")
        self.bindir = bindir
        self.port = free_port()
        self.workdir: Path | None = None
        self._as_user: list[str] = []

    @property
    def dsn(self) -> str:
        """libpq connection string for the running server."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        proc = subprocess.run(
            [*self._as_user, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise PgServerError(f"{Path(argv[0]).name} failed: {(proc.stderr or proc.stdout)[-800:]}")

    def start(self) -> PgServer:
        """initdb into a fresh temp folder and start the server; wait until it accepts."""
        # Not under pytest's tmp_path: that is private to root, and the server may run as postgres.
        self.workdir = Path(tempfile.mkdtemp(prefix="rekam-pg-"))
        data = self.workdir / "data"
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise PgServerError("running as root and no 'postgres' user to run the server") from None
            os.chown(self.workdir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync")
        return self._launch()

    def restart(self) -> PgServer:
        """Stop the server (fast shutdown, data kept) and start it again on the same port."""
        if self.workdir is None:
            raise PgServerError("server was never started")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.workdir / "data"), "-m", "fast",
                  "-w", "-t", "30", "stop", timeout=60)
        return self._launch()

    def _launch(self) -> PgServer:
        if self.workdir is None:
            raise PgServerError("server folder missing")
        data = self.workdir / "data"
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.workdir} -c fsync=on -c max_connections=50"
        )
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                  str(self.workdir / "server.log"), "-w", "-t", "60", "start", timeout=90)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True, check=False, timeout=10,
            )
            if probe.returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise PgServerError("PostgreSQL did not accept connections within 30 s")

    def stop(self) -> None:
        """Stop the server and delete its folder (immediate mode: the data is thrown away)."""
        if self.workdir is None:
            return
        data = self.workdir / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                 "-w", "-t", "30", "stop"],
                capture_output=True, check=False, timeout=60,
            )
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
