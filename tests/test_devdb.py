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
