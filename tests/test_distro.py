"""The distro's defaults and hook injection, in process (the end-to-end runs under
``opentelemetry-instrument`` are in ``tests/zerocode``)."""

from __future__ import annotations

import os

import pytest

from peekapi_otel import distro
from peekapi_otel._configure import SANITIZE, merge_env_list


def test_defaults_only_fill_what_the_user_left_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv(SANITIZE, "x-secret")
    distro._defaults()
    assert os.environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert os.environ["OTEL_METRICS_EXPORTER"] == "none"
    assert os.environ["OTEL_LOGS_EXPORTER"] == "none"
    assert os.environ[SANITIZE] == "x-secret,cookie,set-cookie,proxy-authorization"


def test_merge_env_list_keeps_the_users_entries_and_adds_each_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("X_LIST", " Cookie , other")
    merge_env_list("X_LIST", ["cookie", "set-cookie"])
    merge_env_list("X_LIST", ["set-cookie"])
    assert os.environ["X_LIST"] == "Cookie,other,set-cookie"


def test_flask_and_django_get_our_hooks_chained_with_theirs() -> None:
    calls: list[str] = []

    def theirs(*args: object) -> None:
        calls.append("theirs")

    kwargs = distro._with_hooks("flask", {"request_hook": theirs, "excluded_urls": "x"})
    assert kwargs["excluded_urls"] == "x"
    assert kwargs["request_hook"] is not theirs
    assert callable(kwargs["response_hook"])
    assert set(distro._with_hooks("django", {})) == {"request_hook", "response_hook"}


def test_fastapi_drops_send_receive_spans_only_when_traces_go_nowhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert distro._with_hooks("fastapi", {})["exclude_spans"] == ["send", "receive"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert distro._with_hooks("fastapi", {})["exclude_spans"] == ["send", "receive"]
    # The user's choice wins, and exported traces keep OpenTelemetry's defaults.
    assert distro._with_hooks("fastapi", {"exclude_spans": []})["exclude_spans"] == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    assert "exclude_spans" not in distro._with_hooks("fastapi", {})
    assert "exclude_spans" not in distro._with_hooks("starlette", {})
