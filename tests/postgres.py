"""A throw-away PostgreSQL server for the tests: its own cluster in a temporary directory, on a Unix socket.

Debian's PostgreSQL is installed on the project's machines but not running (.ci/run installs it where
it is missing); a test that needs the server starts this one, or is skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path


class PostgresUnavailable(Exception):
    pass


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise PostgresUnavailable("no PostgreSQL server binaries (pg_ctl): apt-get install postgresql")


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def start(directory: Path, port: int = 54329) -> tuple[str, callable]:
    """Start a cluster in `directory`; returns an SQLAlchemy URL of a fresh database and a stop function."""
    bin_dir = _binaries()
    data, socket_dir = directory / "data", directory / "socket"
    socket_dir.mkdir(parents=True)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
        shutil.chown(socket_dir, "postgres")
    run = lambda command: subprocess.run(
        _as_server_user(command),
        capture_output=True,
        text=True,  # noqa: E731
        timeout=120,
    )
    done = run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"])
    if done.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-300:]}")
    options = f"-p {port} -k {socket_dir} -c listen_addresses=''"
    done = run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "server.log"), "-w", "start"]
    )
    if done.returncode != 0:
        raise PostgresUnavailable(f"the server did not start: {done.stderr.strip()[-300:]}")

    def stop() -> None:
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])

    for _ in range(50):
        if run([str(bin_dir / "pg_isready"), "-h", str(socket_dir), "-p", str(port)]).returncode == 0:
            break
        time.sleep(0.2)
    done = run([str(bin_dir / "createdb"), "-h", str(socket_dir), "-p", str(port), "-U", "postgres", "optuna"])
    if done.returncode != 0:
        stop()
        raise PostgresUnavailable(f"createdb failed: {done.stderr.strip()[-300:]}")
    return f"postgresql+psycopg2://postgres@/optuna?host={socket_dir}&port={port}", stop
