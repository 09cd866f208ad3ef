"""A real PostgreSQL server for tests: Debian's ``postgresql`` binaries run by ``initdb`` and
``pg_ctl`` into a temporary directory, on a free loopback port, with the unix socket in
that directory too. It can be stopped and started again on the same port and data.

PostgreSQL refuses to run as root; as root the cluster belongs to an unprivileged system
user (``postgres`` when the package created it, else ``nobody``) and every PostgreSQL
command runs as that user through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
DATABASE = "peekapi"
USER = "peekapi"


def find_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` holding initdb and pg_ctl, if any."""
    found = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if (initdb.parent / "pg_ctl").is_file() and re.fullmatch(r"\d+(\.\d+)?", version):
            found.append((float(version), initdb.parent))
    return max(found)[1] if found else None


def missing_reason() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None when it can."""
    if find_bin() is None:
        return (
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
            "apt-get install postgresql, as .ci/run does"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL cannot be started as root"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owner() -> str | None:
    """The unprivileged user the cluster runs as, when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


class PostgresServer:
    """One throwaway cluster; ``url`` connects as a trusted superuser to ``peekapi``.

    ``fsync`` off (the default for tests) skips flushing to disk: commits are still
    commits for every client, only an OS crash could lose them.
    """

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync
        bin_dir = find_bin()
        if bin_dir is None:
            raise RuntimeError(missing_reason() or "PostgreSQL is not installed")
        self.bin = bin_dir
        self.owner = _owner()
        # Not under pytest's tmp_path: that is private to root, and the cluster's owner
        # has to reach its data directory.
        self.root = Path(tempfile.mkdtemp(prefix="peekapi-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"
        self.sockets.mkdir()
        if self.owner is not None:
            entry = pwd.getpwnam(self.owner)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._initdb()

    def _command(self, *args: str) -> list[str]:
        if self.owner is None:
            return list(args)
        return ["runuser", "-u", self.owner, "--", *args]

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> str:
        done = subprocess.run(
            self._command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr}{self._tail()}")
        return done.stdout

    def _tail(self) -> str:
        try:
            return "\n" + self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _initdb(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets}"
        if not self.fsync:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
        )
        self._wait_ready()
        if not self._has_database():
            self._run(
                str(self.bin / "createdb"),
                "-h",
                str(self.sockets),
                "-p",
                str(self.port),
                "-U",
                USER,
                DATABASE,
            )

    def _has_database(self) -> bool:
        out = self._run(
            str(self.bin / "psql"),
            "-h",
            str(self.sockets),
            "-p",
            str(self.port),
            "-U",
            USER,
            "-d",
            "postgres",
            "-Atc",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        )
        return out.strip() == "1"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        ready = [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        while time.monotonic() < deadline:
            if subprocess.run(ready, timeout=10, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"PostgreSQL not ready on port {self.port}{self._tail()}")

    def pid(self) -> int | None:
        """The postmaster's PID while the server runs."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server (fast: sessions are ended), by its PID if pg_ctl cannot."""
        pid = self.pid()
        if pid is None:
            return
        try:
            self._run(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(STOP_TIMEOUT)),
                "stop",
                timeout=STOP_TIMEOUT + 10,
            )
        except (RuntimeError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + STOP_TIMEOUT
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (an exited postmaster its reaper has not collected
    yet, as in a container whose PID 1 does not reap) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
