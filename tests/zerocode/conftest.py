from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerocode.support import (
    APPS,
    EXAMPLES,
    FRAMEWORK_SPECS,
    PROJECT_KEY,
    MakeServer,
    OtlpReceiver,
    Server,
    Venv,
    _Terminal,
    base_env,
    ensure_venvs,
    free_port,
    log,
)


def pytest_configure(config: pytest.Config) -> None:
    _Terminal.capture = config.pluginmanager.getplugin("capturemanager")


@pytest.fixture(scope="session")
def venvs() -> tuple[Venv, Venv]:
    started = time.monotonic()
    log("preparing user-like virtual environments (cached between runs)")
    user, otlp = ensure_venvs()
    log(f"virtual environments ready after {time.monotonic() - started:.1f}s")
    return user, otlp


@pytest.fixture(scope="session")
def framework_venv() -> Venv:
    """``pip install "peekapi-otel[litestar,bottle,falcon,pyramid,aiohttp,tornado,quart]"
    uvicorn gunicorn``."""
    started = time.monotonic()
    log("preparing the frameworks' virtual environment (cached between runs)")
    (venv,) = ensure_venvs(FRAMEWORK_SPECS)
    log(f"frameworks' virtual environment ready after {time.monotonic() - started:.1f}s")
    return venv


@pytest.fixture(scope="session")
def user_venv(venvs: tuple[Venv, Venv]) -> Venv:
    """``pip install "peekapi-otel[fastapi,flask,django]" uvicorn gunicorn``."""
    return venvs[0]


@pytest.fixture(scope="session")
def otlp_venv(venvs: tuple[Venv, Venv]) -> Venv:
    """The same plus ``opentelemetry-distro opentelemetry-exporter-otlp-proto-http``."""
    return venvs[1]


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


# name -> (example directory, command with {port})
COMMANDS: dict[str, tuple[str, list[str]]] = {
    "fastapi-uvicorn": (
        "fastapi",
        ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}"],
    ),
    "fastapi-uvicorn-workers2": (
        "fastapi",
        ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}", "--workers", "2"],
    ),
    "fastapi-gunicorn-uvicornworker": (
        "fastapi",
        [
            "gunicorn",
            "-k",
            "uvicorn.workers.UvicornWorker",
            "-w",
            "2",
            "-b",
            "127.0.0.1:{port}",
            "app:app",
        ],
    ),
    "flask-gunicorn-w2": ("flask", ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "app:app"]),
    "flask-gunicorn-w2-preload": (
        "flask",
        ["gunicorn", "-w", "2", "--preload", "-b", "127.0.0.1:{port}", "app:app"],
    ),
    "flask-devserver": (
        "flask",
        ["flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", "{port}"],
    ),
    "django-runserver": (
        "django",
        ["python", "manage.py", "runserver", "--noreload", "127.0.0.1:{port}"],
    ),
    "django-gunicorn": (
        "django",
        ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "mysite.wsgi"],
    ),
    "django-uvicorn-asgi": (
        "django",
        ["uvicorn", "mysite.asgi:application", "--host", "127.0.0.1", "--port", "{port}"],
    ),
    "litestar-uvicorn": (
        "litestar",
        ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}"],
    ),
    "bottle-gunicorn": ("bottle", ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "app:app"]),
    "falcon-gunicorn": ("falcon", ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "app:app"]),
    "falcon_asgi-uvicorn": (
        "falcon",
        ["uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", "{port}"],
    ),
    "pyramid-gunicorn": (
        "pyramid",
        ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "app:app"],
    ),
    "aiohttp-own-server": ("aiohttp", ["python", "app.py"]),
    "tornado-own-server": ("tornado", ["python", "app.py"]),
    "quart-uvicorn": ("quart", ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}"]),
    "streams-flask-gunicorn": (
        "@apps",
        ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "streams_flask:app"],
    ),
    "streams-django-gunicorn": (
        "@apps",
        ["gunicorn", "-w", "2", "-b", "127.0.0.1:{port}", "streamsite.wsgi"],
    ),
    "custom-provider-uvicorn": (
        "@apps",
        ["uvicorn", "custom_provider_app:app", "--host", "127.0.0.1", "--port", "{port}"],
    ),
}


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """``make_server(venv, mode, zero_code=True, **env)``: a not yet started server."""
    servers: list[Server] = []

    def make(venv: Venv, mode: str, *, zero_code: bool = True, **env: str | None) -> Server:
        example, template = COMMANDS[mode]
        cwd = APPS if example == "@apps" else EXAMPLES / example
        port = free_port()
        cmd = [part.replace("{port}", str(port)) for part in template]
        cmd[0] = str(venv.bin / cmd[0])
        if zero_code:
            cmd = [str(venv.bin / "opentelemetry-instrument"), *cmd]
        extra: dict[str, str | None] = {"PEEKAPI_API_KEY": PROJECT_KEY}
        if mode.endswith("own-server"):
            extra["PORT"] = str(port)  # the app starts its framework's own server
        if example == "django":
            # Must be exported before opentelemetry-instrument runs (OTEL-FACTS Q8).
            extra["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
        extra.update(env)
        server = Server(
            name=f"{mode}{'' if zero_code else ' (programmatic)'}",
            cmd=cmd,
            cwd=cwd,
            env=base_env(venv, tmp_path, **{k: v for k, v in extra.items() if v is not None}),
            port=port,
            log_path=tmp_path / f"server-{len(servers)}.log",
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
