"""A throw-away PostgreSQL server for the tests: its own cluster in a temporary directory, reached as the README
says, postgresql://user:password@host:port/database, over TCP on 127.0.0.1 with a password that is checked.

Debian's PostgreSQL is installed on the project's machines but not running (.ci/run installs it where
it is missing); a test that needs the server starts this one, or is skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

PASSWORD = "SECRETPW-7f3a"  # the server's password: tests look for it where it must never be


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(directory: Path, password: str) -> tuple[str, callable]:
    """Start a cluster in `directory`; returns the URL of a fresh database, whose user postgres logs in over TCP
    with `password` (scram-sha-256), and a stop function. The tools here reach it on its Unix socket, trusted."""
    bin_dir = _binaries()
    data, socket_dir, password_file = directory / "data", directory / "socket", directory / "password"
    socket_dir.mkdir(parents=True)
    password_file.write_text(password + "\n")
    if os.geteuid() == 0:
        for path in (directory, socket_dir, password_file):
            shutil.chown(path, "postgres")
    run = lambda command: subprocess.run(  # noqa: E731
        _as_server_user(command), capture_output=True, text=True, timeout=120
    )
    done = run(
        [
            str(bin_dir / "initdb"),
            *("-D", str(data), "-U", "postgres", f"--pwfile={password_file}"),
            *("--auth-local=trust", "--auth-host=scram-sha-256"),
        ]
    )
    if done.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()[-300:]}")
    port = _free_port()  # TCP ports are shared with whatever else runs here: take one that is free now
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1"
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
    return f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{port}/optuna", stop
