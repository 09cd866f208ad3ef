"""Streamed responses and chunked request bodies under ``opentelemetry-instrument`` with
gunicorn (2 sync workers): an httpbin-style ``/stream-bytes`` endpoint in Flask and in
Django (``StreamingHttpResponse``), and a 4,000-byte ``Transfer-Encoding: chunked`` POST.

The events must carry the bytes the server wrote and the bytes the app read: 3,000 for
the stream, 0 for HEAD, 4,000 for the chunked POST in Flask. Django over WSGI reads a
body without Content-Length as empty (the view gets ``b""``), and the event says 0, as
the view saw.
"""

from __future__ import annotations

import http.client

import pytest

from ingest import Ingest
from zerocode.support import MakeServer, Venv, log, request

pytestmark = pytest.mark.slow

UPLOAD = bytes(range(256)) * 15 + b"\n" * 160  # 4,000 bytes


def chunked_post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for start in range(0, len(body), 1000):
            chunk = body[start : start + 1000]
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("mode", "app_reads"),
    [("streams-flask-gunicorn", len(UPLOAD)), ("streams-django-gunicorn", 0)],
)
def test_streamed_and_chunked_bodies_are_counted(
    user_venv: Venv, make_server: MakeServer, ingest: Ingest, mode: str, app_reads: int
) -> None:
    env = {"PEEKAPI_ENDPOINT": ingest.url, "PEEKAPI_FLUSH_INTERVAL": "0.5"}
    if "django" in mode:
        env["DJANGO_SETTINGS_MODULE"] = "streamsite.settings"
    server = make_server(user_venv, mode, **env).start()
    target = "/stream-bytes/3000?chunk_size=500"
    status, body = request(server.port, "GET", target)
    assert (status, len(body)) == (200, 3000)
    status, body = request(server.port, "HEAD", target)
    assert (status, body) == (200, b"")
    status, body = chunked_post(server.port, "/echo-size", UPLOAD)
    assert (status, int(body)) == (200, app_reads)
    events = ingest.wait_for(3, timeout=15)
    server.stop()
    server.assert_clean_output()
    log(f"{mode}: {[(e['method'], e['request_size'], e['response_size']) for e in events]}")
    sizes = sorted((e["method"], e["path"], e["request_size"], e["response_size"]) for e in events)
    assert sizes == [
        ("GET", "/stream-bytes/<int:n>", 0, 3000),
        ("HEAD", "/stream-bytes/<int:n>", 0, 0),
        ("POST", "/echo-size", app_reads, len(str(app_reads))),
    ], events
