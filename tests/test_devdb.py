"""The embedded PostgreSQL that `make run` and `make test` use starts and stops cleanly."""

import socket

import psycopg

from panel.devdb import DATABASE_NAME, Cluster, free_port


def _port_is_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_embedded_cluster_starts_serves_and_stops(tmp_path):
    cluster = Cluster(tmp_path / "pgdata", free_port(), durable=False)
    cluster.start()
    try:
        assert cluster.is_running()
        with psycopg.connect(cluster.url.replace("postgres://", "postgresql://")) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (DATABASE_NAME,)
    finally:
        cluster.stop()
    assert not cluster.is_running()
    assert not _port_is_open(cluster.port)
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


def test_embedded_cluster_keeps_its_data_between_starts(tmp_path):
    cluster = Cluster(tmp_path / "pgdata", free_port())
    cluster.start()
    try:
        with psycopg.connect(cluster.url.replace("postgres://", "postgresql://"),
                             autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
    finally:
        cluster.stop()
    cluster.start()
    try:
        with psycopg.connect(cluster.url.replace("postgres://", "postgresql://")) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
    finally:
        cluster.stop()


# --- process life: `make run` killed hard, and what the next one does --------------------------

import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

PYTHON = sys.executable
HONCHO = str(Path(sys.executable).with_name("honcho"))


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent (or an init) to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _wait_for(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _devdb_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {**os.environ, "DEVDB_PORT": str(port), "DEVDB_DATA_DIR": str(tmp_path / "pgdata")}
    env.pop("DATABASE_URL", None)
    return env


def _devdb_run(env: dict[str, str], *command: str, **options) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "panel.devdb", "run", "--", *command], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **options)


@pytest.mark.slow
def test_a_run_killed_hard_leaves_no_process_and_the_next_run_starts(tmp_path):
    """`make run`'s shape — devdb, then honcho, then Procfile processes under `devdb child`,
    one with a child of its own — killed with kill -9 of its process group, as a closed
    terminal or an OOM kill does: every process goes, and the next run finds the PostgreSQL
    left behind, stops it cleanly and starts."""
    port = free_port()
    env = _devdb_env(tmp_path, port)
    child = f"exec {PYTHON} -m panel.devdb child --"
    (tmp_path / "Procfile").write_text(
        f"server: {child} {PYTHON} -c 'import os, time; "
        f"open(\"{tmp_path}/server.pid\", \"w\").write(str(os.getpid())); time.sleep(600)'\n"
        f"pool: {child} sh -c 'sleep 600 & echo $! > {tmp_path}/pool.pid; wait'\n")
    first = _devdb_run(env, "sh", "-c", f"exec {HONCHO} start -f {tmp_path}/Procfile",
                       start_new_session=True)
    pid_files = [tmp_path / "server.pid", tmp_path / "pool.pid"]
    try:
        _wait_for(lambda: all(f.exists() and f.read_text().strip() for f in pid_files), 60,
                  "the Procfile processes")
    except AssertionError:
        first.kill()
        raise AssertionError(first.communicate()[0]) from None
    pids = [int(f.read_text()) for f in pid_files]
    pids += [_parent(pid) for pid in pids]  # the `devdb child` supervisors
    assert all(_running(pid) for pid in pids)

    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    _wait_for(lambda: not any(_running(pid) for pid in pids), 15, "the children to die")
    leftover = Cluster(tmp_path / "pgdata", port)
    assert leftover.is_running()  # PostgreSQL runs detached: it is the next run's to clear

    second = _devdb_run(env, PYTHON, "-c", "import os, psycopg; psycopg.connect(os.environ["
                        "'DATABASE_URL'].replace('postgres://', 'postgresql://')).execute("
                        "'SELECT 1'); print('second run connected')")
    out = second.communicate(timeout=90)[0]
    assert second.returncode == 0, out
    assert "left running" in out and "second run connected" in out
    assert not leftover.is_running()  # and the second run stopped it when it ended


@pytest.mark.slow
def test_a_foreign_program_on_the_port_is_named_and_nothing_starts(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        run = _devdb_run(_devdb_env(tmp_path, port), "true")
        out = run.communicate(timeout=90)[0]
    assert run.returncode == 2, out
    assert f"port {port} is taken by another program (pid {os.getpid()}" in out
    assert "DEVDB_PORT" in out


@pytest.mark.slow
def test_a_second_run_on_a_data_directory_in_use_says_so_and_leaves_it_alone(tmp_path):
    env = _devdb_env(tmp_path, free_port())
    first = _devdb_run(env, "sleep", "60")
    try:
        _wait_for(lambda: (tmp_path / "pgdata" / "devdb.pid").exists(), 60, "the first run")
        second = _devdb_run(env, "true")
        out = second.communicate(timeout=60)[0]
        assert second.returncode == 2, out
        assert f"another `make run` (pid {first.pid})" in out
        assert Cluster(tmp_path / "pgdata", 0).is_running()  # the first run's, untouched
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert not Cluster(tmp_path / "pgdata", 0).is_running()


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, pending = set(), [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.slow
def test_make_run_killed_with_kill_9_and_started_again(tmp_path):
    """The real `make run` (migrate, seed_demo, honcho with the Procfile), on ports and files
    of its own: kill -9 of its process group leaves no process but the detached PostgreSQL,
    the next `make run` clears that and serves, and Ctrl-C then stops everything."""
    web, sandbox = free_port(), free_port()
    env = {**_devdb_env(tmp_path, free_port()), "WEB_PORT": str(web),
           "SANDBOX_PORT": str(sandbox), "SANDBOX_URL": f"http://127.0.0.1:{sandbox}/api/v2",
           "SANDBOX_DB": str(tmp_path / "sandbox.sqlite3"),
           "BEAT_SCHEDULE": str(tmp_path / "beat-schedule"),
           "CELERY_BROKER_URL": f"filesystem://{tmp_path}/queue"}
    env.pop("REDIS_URL", None)
    healthz = f"http://127.0.0.1:{web}/healthz"
    repo = Path(__file__).resolve().parent.parent

    def make_run(log: str) -> subprocess.Popen:
        return subprocess.Popen(["make", "run"], cwd=repo, env=env, start_new_session=True,
                                stdout=(tmp_path / log).open("w"), stderr=subprocess.STDOUT)

    first = make_run("first.log")
    try:
        _wait_for(lambda: _answers(healthz), 150, "the first make run to serve")
        _wait_for(lambda: len(_descendants(first.pid)) >= 12, 30, "all its processes")
    except AssertionError:
        os.killpg(first.pid, signal.SIGKILL)
        raise AssertionError((tmp_path / "first.log").read_text()[-3000:]) from None
    processes = _descendants(first.pid)

    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    _wait_for(lambda: not any(_running(pid) for pid in processes), 20,
              "every process of the killed run to die")
    assert not _answers(healthz)
    assert Cluster(tmp_path / "pgdata", 0).is_running()  # detached: the next run clears it

    second = make_run("second.log")
    try:
        _wait_for(lambda: _answers(healthz), 90, "the second make run to serve")
    finally:
        processes = _descendants(second.pid)
        os.killpg(second.pid, signal.SIGINT)  # Ctrl-C in its terminal
        second.wait(timeout=60)
    log = (tmp_path / "second.log").read_text()
    assert "left running" in log and "Demo logins" in log, log[-3000:]
    _wait_for(lambda: not any(_running(pid) for pid in processes), 20,
              "every process of the stopped run to end")
    assert not Cluster(tmp_path / "pgdata", 0).is_running()
