"""Helpers for the end-to-end zero-code tests: user-like virtual environments, real
servers in subprocesses, HTTP traffic, and a loopback OTLP/HTTP receiver.

Everything here is stdlib so it runs in the test process, whatever venv that is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
APPS = Path(__file__).resolve().parent / "apps"
VENV_ROOT = Path(os.environ.get("PEEKAPI_TEST_VENVS", "/tmp/peekapi-otel-test-venvs"))

# What the README tells a user to install (all frameworks in one venv to save time).
USER_REQUIREMENTS: tuple[str, ...] = ("uvicorn", "gunicorn")
USER_EXTRAS = "fastapi,flask,django"
# The order matters to pip 26.3: with opentelemetry-distro named *before* the exporter,
# ``peekapi-otel[flask]`` + both fails with ResolutionImpossible on the current index
# (the flask instrumentation stops at 0.66b1 while distro/exporter/asgi/django have
# 0.66b2/1.45.2, and the resolver gives up); exporter first resolves to 0.66b1/1.45.1.
OTLP_REQUIREMENTS: tuple[str, ...] = (
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-distro",
)
OTLP_EXTRAS = USER_EXTRAS
# The frameworks of peekapi-otel[litestar] ... in a venv of their own (built only by the
# tests that use it), so the two above stay as small as the README's FastAPI/Flask/Django
# installs.
FRAMEWORK_EXTRAS = "litestar,bottle,falcon,pyramid,aiohttp,tornado,quart"

VenvSpec = tuple[str, str, tuple[str, ...]]
DEFAULT_SPECS: tuple[VenvSpec, ...] = (
    ("user", USER_EXTRAS, ()),
    ("otlp", OTLP_EXTRAS, OTLP_REQUIREMENTS),
)
FRAMEWORK_SPECS: tuple[VenvSpec, ...] = (("frameworks", FRAMEWORK_EXTRAS, ()),)

# A pip constraints file for every venv built here (``.ci/run`` passes ``.ci/oldest.txt``
# to run the scenarios on the oldest OpenTelemetry set pyproject.toml allows).
CONSTRAINTS = os.environ.get("PEEKAPI_TEST_CONSTRAINTS", "")

PROJECT_KEY = "zerocode-project-key"
API_KEY_SECRET = "sk-live-zerocode-SECRET-apikey-0001"
TOKEN_SECRET = "Bearer zerocode-SECRET-token-0002"
COOKIE_SECRET = "session=zerocode-SECRET-cookie-0003"
SECRETS = (API_KEY_SECRET, TOKEN_SECRET, COOKIE_SECRET, "zerocode-SECRET")


class _Terminal:
    """pytest's capture manager, set by conftest, so progress is shown even when captured."""

    capture: Any = None


def log(message: str) -> None:
    """Progress on the terminal even under pytest's output capture."""
    line = f"[zerocode {time.strftime('%H:%M:%S')}] {message}\n"
    capture = _Terminal.capture
    context = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with context:
        sys.stderr.write(line)
        sys.stderr.flush()


def consumer_hash(value: str) -> str:
    return "hash_" + hashlib.sha256(value.encode()).hexdigest()[:12]


# --- virtual environments ------------------------------------------------------------


def _tree_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _run(cmd: Sequence[str], timeout: float) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    log(f"  done in {time.monotonic() - started:.1f}s: {' '.join(cmd)[:110]}")


def _package_copy(dest: Path) -> Path:
    """A copy of what a user's sdist holds, so pip never writes into the work tree."""
    src = dest / "peekapi-otel"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    for name in ("src", "examples"):
        shutil.copytree(
            REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return src


@dataclass
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def has(self, dist: str) -> bool:
        return bool(list((self.path / "lib").glob(f"python*/site-packages/{dist}-*.dist-info")))


def ensure_venvs(specs: tuple[VenvSpec, ...] = DEFAULT_SPECS) -> tuple[Venv, ...]:
    """The venvs of ``specs`` (name, extras, more requirements): by default the plain
    user venv and the one with opentelemetry-distro + OTLP/HTTP exporter.

    Dependencies are keyed by a hash of ``pyproject.toml`` and reused across runs; the
    package itself is reinstalled (non-editable, no deps) whenever ``src`` changed.
    A file lock keeps concurrent test runs from building the same venv twice.
    """
    deps_key = _tree_digest([REPO / "pyproject.toml"])
    constraints = Path(CONSTRAINTS).read_text() if CONSTRAINTS else ""
    recipe = repr((specs, USER_REQUIREMENTS, constraints))
    deps_key = hashlib.sha256((deps_key + recipe).encode()).hexdigest()[:16]
    src_key = _tree_digest([REPO / "src", REPO / "examples", REPO / "pyproject.toml"])
    root = VENV_ROOT / deps_key
    root.mkdir(parents=True, exist_ok=True)
    os.utime(root)
    for other in VENV_ROOT.iterdir():
        # Venvs of an older pyproject.toml, unused for a day.
        if other != root and other.is_dir() and time.time() - other.stat().st_mtime > 86400:
            shutil.rmtree(other, ignore_errors=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        venvs = tuple(Venv(root / name) for name, _, _ in specs)
        pending = [
            (venv, extras, extra)
            for venv, (_, extras, extra) in zip(venvs, specs, strict=True)
            if not (venv.path / ".complete").exists()
        ]
        marker = root / ".src"
        src_ok = marker.exists() and marker.read_text() == src_key
        if pending or not src_ok:
            started = time.monotonic()
            build = Path(tempfile.mkdtemp(prefix="peekapi-otel-build-"))
            try:
                src = _package_copy(build)
                log(f"building peekapi-otel wheel from a copy of {REPO}")
                _run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "wheel",
                        "-q",
                        "--no-deps",
                        "-w",
                        str(build / "dist"),
                        str(src),
                    ],
                    600,
                )
                wheel = next((build / "dist").glob("peekapi_otel-*.whl"))
                threads = []
                errors: list[BaseException] = []

                def create(venv: Venv, extras: str, extra: Sequence[str]) -> None:
                    try:
                        if venv.path.exists():
                            shutil.rmtree(venv.path)
                        log(f"creating venv {venv.path} (+{' '.join(extra) or 'nothing'})")
                        _run([sys.executable, "-m", "venv", str(venv.path)], 300)
                        _run(
                            [
                                str(venv.python),
                                "-m",
                                "pip",
                                "install",
                                "-q",
                                *(["-c", CONSTRAINTS] if CONSTRAINTS else []),
                                f"peekapi-otel[{extras}] @ {wheel.as_uri()}",
                                *USER_REQUIREMENTS,
                                *extra,
                            ],
                            900,
                        )
                        (venv.path / ".complete").write_text("ok")
                    except BaseException as exc:  # noqa: BLE001 - re-raised below
                        errors.append(exc)

                for venv, extras, extra in pending:
                    thread = threading.Thread(target=create, args=(venv, extras, extra))
                    thread.start()
                    threads.append(thread)
                for thread in threads:
                    thread.join()
                if errors:
                    raise errors[0]
                built = [v.path for v, _, _ in pending]
                for venv in venvs:
                    if venv.path in built:
                        continue
                    log(f"reinstalling peekapi-otel into {venv.path} (src changed)")
                    _run(
                        [
                            str(venv.python),
                            "-m",
                            "pip",
                            "install",
                            "-q",
                            "--no-deps",
                            "--force-reinstall",
                            str(wheel),
                        ],
                        300,
                    )
                marker.write_text(src_key)
                log(f"venvs ready in {time.monotonic() - started:.1f}s")
            finally:
                shutil.rmtree(build, ignore_errors=True)
        else:
            log(f"reusing venvs in {root}")
    return venvs


# --- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(venv: Venv, tmp: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no OTEL_/PEEKAPI_ from the outside, the venv first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "PEEKAPI_", "VIRTUAL_ENV", "PYTHON", "DJANGO_"))
    }
    env["PATH"] = f"{venv.bin}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv.path)
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    # gunicorn 27 puts a control socket under ~/.gunicorn: one per test, not shared.
    env["HOME"] = str(tmp / "home")
    (tmp / "home").mkdir(exist_ok=True)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in examples/ from the servers
    env.update(extra)
    return env


@dataclass
class Server:
    name: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    returncode: int | None = None

    def start(self, timeout: float = 60.0) -> Server:
        log(f"starting {self.name}: {' '.join(self.cmd)}")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.output()}")
            # A bare TCP connect, not a request: a probe request would be an event too.
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not listen within {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 20.0, group: bool = False) -> int | None:
        """SIGTERM to the server's main process (as a container runtime does), or to
        its whole process group with ``group`` (as systemd's default KillMode does),
        then SIGKILL to the whole group after ``timeout``."""
        proc = self.proc
        if proc is None or self.returncode is not None:
            return self.returncode
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                os.kill(proc.pid, signal.SIGTERM)
        try:
            self.returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM for {timeout}s: killing")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            self.returncode = proc.wait(10)
        # Workers of a process group can outlive the leader for a moment.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._log.close()
        return self.returncode

    def output(self) -> str:
        with contextlib.suppress(Exception):
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def assert_clean_output(self) -> str:
        return assert_clean_output(self.output(), self.name)


# --- server output ---------------------------------------------------------------------

#: Frames from these paths are ours: the installed package and the apps the tests run.
OUR_CODE: tuple[str, ...] = ("peekapi_otel", str(EXAMPLES), str(APPS))
_TRACEBACK = "Traceback (most recent call last):"


def tracebacks(text: str) -> list[str]:
    """Each traceback in a server log, from its header to its exception line (chained
    ones, "During handling of the above exception", each count on their own)."""
    found: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if _TRACEBACK not in lines[index]:
            index += 1
            continue
        start = index
        index += 1
        # Frames and source lines are indented; the exception line is the first one
        # that is not (a bounded walk: at most the rest of the log).
        while index < len(lines) and (lines[index].startswith((" ", "\t")) or not lines[index]):
            index += 1
        found.append("\n".join(lines[start : index + 1]))
        index += 1
    return found


def is_ours(block: str) -> bool:
    """A traceback that passes through our code (a frame in the package or in the apps
    under test), or whose exception names peekapi."""
    for line in block.splitlines():
        stripped = line.strip()
        if stripped.startswith("File ") and any(part in stripped for part in OUR_CODE):
            return True
    return "peekapi" in block.splitlines()[-1].lower()


def assert_clean_output(text: str, name: str = "server") -> str:
    """Nothing of ours went wrong: no failed start-up, no internal error, no traceback
    through our code. Upstream noise (e.g. asyncio's ``BaseEventLoop.__del__`` in a
    uvicorn worker restarted while SIGTERM arrives) is shown, not failed on: what the
    tests check about it is that no event is lost, which they assert on the ingest."""
    assert "Failed to auto initialize" not in text, text
    assert "peekapi-otel hit an internal error" not in text, text
    blocks = tracebacks(text)
    ours = [block for block in blocks if is_ours(block)]
    assert not ours, f"{name}: a traceback through peekapi-otel or the app:\n" + "\n\n".join(ours)
    if blocks:
        log(f"{name}: {len(blocks)} traceback(s) from upstream code only (not failed on):")
        for block in blocks:
            log("  " + block.replace("\n", "\n  "))
    return text


MakeServer = Callable[..., Server]


@contextlib.contextmanager
def running(server: Server, timeout: float = 60.0) -> Iterator[Server]:
    try:
        yield server.start(timeout)
    finally:
        server.stop()


# --- traffic ---------------------------------------------------------------------------


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


CREATE_BODY = b'{"name": "widget", "price": 2.5}'


@dataclass
class Sent:
    method: str
    path: str
    status: int
    response_size: int
    request_size: int
    consumer: str | None


def standard_traffic(port: int) -> list[Sent]:
    """Four requests: an API-key GET, a bearer POST with a body, a 404 and the health check."""
    sent: list[Sent] = []
    for method, path, body, headers, consumer in (
        (
            "GET",
            "/items/1",
            None,
            {"x-api-key": API_KEY_SECRET, "cookie": COOKIE_SECRET},
            consumer_hash(API_KEY_SECRET),
        ),
        (
            "POST",
            "/items",
            CREATE_BODY,
            {"authorization": TOKEN_SECRET, "content-type": "application/json"},
            consumer_hash(TOKEN_SECRET),
        ),
        ("GET", "/items/999", None, {"x-api-key": API_KEY_SECRET}, consumer_hash(API_KEY_SECRET)),
        ("GET", "/health", None, {}, None),
    ):
        status, data = request(port, method, path, body, headers)
        sent.append(Sent(method, path, status, len(data), len(body or b""), consumer))
    return sent


def unique_events(events: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        meta = event.get("metadata") or {}
        out[(meta.get("trace_id", ""), meta.get("span_id", ""))] = event
    return out


# --- OTLP/HTTP receiver ------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """Minimal protobuf wire decoding: (field number, wire type, value)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:  # pragma: no cover - groups are not used by OTLP
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


@dataclass
class OtlpSpan:
    trace_id: str
    span_id: str
    name: str
    kind: int  # 2 = SERVER
    attributes: dict[str, Any]


def _any_value(data: bytes) -> Any:
    for number, _, value in _fields(data):
        if number == 1:
            return value.decode(errors="replace")
        if number in (2, 3):
            return value
        if number == 5:  # array_value
            return [_any_value(v) for n, _, v in _fields(value) if n == 1]
    return None


def decode_spans(body: bytes) -> list[OtlpSpan]:
    spans: list[OtlpSpan] = []
    for n1, _, resource_spans in _fields(body):
        if n1 != 1:
            continue
        for n2, _, scope_spans in _fields(resource_spans):
            if n2 != 2:
                continue
            for n3, _, raw in _fields(scope_spans):
                if n3 != 2:
                    continue
                span = OtlpSpan("", "", "", 0, {})
                for number, _, value in _fields(raw):
                    if number == 1:
                        span.trace_id = value.hex()
                    elif number == 2:
                        span.span_id = value.hex()
                    elif number == 5:
                        span.name = value.decode(errors="replace")
                    elif number == 6:
                        span.kind = value
                    elif number == 9:
                        key, val = "", None
                        for n, _, v in _fields(value):
                            if n == 1:
                                key = v.decode()
                            elif n == 2:
                                val = _any_value(v)
                        span.attributes[key] = val
                spans.append(span)
    return spans


@dataclass
class OtlpReceiver:
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.paths.append(self.path)
                if self.path == "/v1/traces":
                    receiver.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[OtlpSpan]:
        return [s for body in list(self.bodies) for s in decode_spans(body)]

    def server_spans(self) -> list[OtlpSpan]:
        return [s for s in self.spans() if s.kind == 2]

    def raw(self) -> bytes:
        return b"".join(self.bodies)

    def wait_for_server_spans(self, count: int, timeout: float) -> list[OtlpSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.server_spans()
            if len(spans) >= count:
                return spans
            time.sleep(0.2)
        return self.server_spans()


def json_dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)
