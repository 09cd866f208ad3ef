"""The PostgreSQL test server itself: loopback only, stopped and started again with its
data, and gone (by PID) after the test."""

from __future__ import annotations

import os
import socket

import psycopg
import pytest

from pg import PostgresServer, _alive


def test_server_listens_on_loopback_only(pg_server: PostgresServer) -> None:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
        sockets = conn.execute("SHOW unix_socket_directories").fetchone()
        user = conn.execute("SELECT current_user").fetchone()
    assert listen == ("127.0.0.1",)
    assert sockets == (str(pg_server.sockets),)
    assert user == ("peekapi",)
    if os.geteuid() == 0:
        assert pg_server.owner in ("postgres", "nobody")
        assert (pg_server.data / "PG_VERSION").stat().st_uid != 0


def test_stop_and_start_keep_the_data_and_port(own_pg: PostgresServer) -> None:
    with psycopg.connect(own_pg.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n INTEGER)")
        conn.execute("INSERT INTO kept VALUES (7)")
    pid = own_pg.pid()
    assert pid is not None
    own_pg.stop()
    assert not _alive(pid)
    assert own_pg.pid() is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(own_pg.url, connect_timeout=2)
    own_pg.start()
    with psycopg.connect(own_pg.url, autocommit=True) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]


def test_destroy_stops_the_server_and_removes_its_files() -> None:
    server = PostgresServer()
    server.start()
    pid = server.pid()
    assert pid is not None
    server.destroy()
    assert not _alive(pid)
    assert not server.root.exists()
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex(("127.0.0.1", server.port)) != 0
