"""PostgreSQL and Redis servers of the fault suite's own, on free ports, stopped and frozen by PID.

Never the shared servers: these are started here (PostgreSQL as the `postgres` OS user, since
initdb and postgres refuse to run as root), and every signal goes to a process group this
module started. `thaw()` comes before any stop, so a frozen server can always be stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.integration.servers import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres() -> dict:
    """Popen arguments that run a command as the postgres OS user when we are root (no runuser
    in between: signals to the process group reach the server itself)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class Postgres:
    """One PostgreSQL cluster (trust auth) in a temporary directory owned by `postgres`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="nba-faults-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "run"
        self.sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        subprocess.run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, capture_output=True,
                       cwd=self.root, **_as_postgres())
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server (a process group of its own) and wait until it answers."""
        log = open(self.root / "server.log", "a")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.sockets), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "max_connections=200"],
            stdout=log, stderr=log, start_new_session=True, cwd=self.root, **_as_postgres())
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if self.process.poll() is not None:
                    raise RuntimeError((self.root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not start in 30 s")

    def url(self, database: str, user: str = "postgres", password: str | None = None) -> str:
        """A URL of a database on this server (trust auth: any password is accepted)."""
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, owner: str = "postgres") -> None:
        """CREATE DATABASE (and its owner role when new)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if owner != "postgres" and not conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone():
                conn.execute(f'CREATE ROLE "{owner}" LOGIN')
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')

    def freeze(self) -> None:
        """SIGSTOP every process of the server: it accepts TCP (the kernel does) but answers
        nothing. The postmaster first (it forks no backend while stopped), then each child:
        backends run in process groups of their own (setsid), so a group signal misses them."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT every process of the server."""
        self._signal(signal.SIGCONT)

    def pids(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, ...)."""
        if self.process is None or self.process.poll() is not None:
            return []
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return [pid, *map(int, children)]

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after 20 s; thaws first."""
        if self.process is None or self.process.poll() is not None:
            return
        self.thaw()
        os.kill(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            for pid in self.pids():
                os.kill(pid, signal.SIGKILL)
            self.process.wait()

    def destroy(self) -> None:
        """Stop and delete the cluster."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):  # a backend that just ended
                os.kill(pid, sig)


class Redis:
    """One redis-server (no persistence) on a free port, optionally with a password."""

    def __init__(self, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """redis://[:password@]127.0.0.1:port/0"""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start on the same port as before and wait until it answers PING."""
        import redis

        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no"]
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start in 15 s")

    def freeze(self) -> None:
        """SIGSTOP the server."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT the server."""
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGKILL (after a thaw); a restart comes back empty, on the same port."""
        if self.process is not None and self.process.poll() is None:
            self.thaw()
            self.process.kill()
            self.process.wait()

    def _signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
