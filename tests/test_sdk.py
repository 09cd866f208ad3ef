"""The SDK seam (``otel/_sdk.py``): every fast path has a public fallback that gives the
same events, every patch is undone by the reset, and the process state is one object.

"public-api-only" turns every shortcut off at once, as on an SDK whose internals moved:
the runtime context, the ``SpanContext`` layout, the attribute container and the
samplers' fields are then reached only through the public API.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, DEFAULT_OFF, DEFAULT_ON

from peekapi_otel import PeekApiSpanProcessor, stats
from peekapi_otel.core import _guard
from peekapi_otel.core._hashing import hash_consumer
from peekapi_otel.core._stats import STATS
from peekapi_otel.hooks import instrumentor_kwargs
from peekapi_otel.otel import _sdk
from peekapi_otel.otel._sampling import ServerRecordOnly, wrap
from peekapi_otel.otel._state import DEFAULT_RULE, STATE
from peekapi_otel.testing import capture_events, reset_process_state
from test_asgi_sizes import BODY, _app, _call

#: Each fast path's switch, on the seam module that reads it.
SHORTCUTS = (
    (_sdk._context, "CONTEXT_GET"),
    (_sdk._context, "TUPLE_LAYOUT"),
    (_sdk._context, "SAMPLER_FIELDS"),
    (_sdk, "PLAIN_DICT"),
)


@pytest.fixture(params=["shortcuts", "public-api-only"])
def seam(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "public-api-only":
        for module, name in SHORTCUTS:
            monkeypatch.setattr(module, name, None if name == "CONTEXT_GET" else False)
        # Without the plain dict there is no ending hook either: the write guard cleans.
        monkeypatch.setattr(_sdk, "ENDING_HOOK", False)
        monkeypatch.setattr(_sdk, "span_kind", operator.attrgetter("kind"))
    return str(request.param)


def test_asgi_events_are_the_same_through_the_public_api(seam: str) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    provider = TracerProvider(sampler=wrap(DEFAULT_OFF))
    with capture_events(provider) as captured:
        app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
        headers = [(b"x-api-key", b"k1"), (b"transfer-encoding", b"chunked")]
        _call(app, "POST", "/stream", headers, version="1.1")
        (event,) = captured.events
    assert (event["request_size"], event["response_size"]) == (BODY, 35)
    assert event["consumer_id"] == hash_consumer("k1")


def _wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"got %d" % len(environ["wsgi.input"].read())
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize("framework", ["wsgi", "flask"])
def test_wsgi_and_flask_events_are_the_same_through_the_public_api(
    seam: str, framework: str
) -> None:
    from werkzeug.test import Client

    provider = TracerProvider(sampler=wrap(DEFAULT_ON))
    with capture_events(provider) as captured:
        if framework == "wsgi":
            from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

            app: Any = OpenTelemetryMiddleware(
                _wsgi_app, tracer_provider=provider, **instrumentor_kwargs("wsgi")
            )
        else:
            from flask import Flask, request
            from opentelemetry.instrumentation.flask import FlaskInstrumentor

            app = Flask(__name__)

            @app.post("/items/<int:item_id>")
            def item(item_id: int) -> str:
                return "got " + str(len(request.get_data()))

            FlaskInstrumentor.instrument_app(app, tracer_provider=provider)
        response = Client(app).post("/items/1", data=b"x" * 12, headers={"X-Api-Key": "k2"})
        assert (response.status_code, response.data) == (200, b"got 12")
        (event,) = captured.events
    assert (event["request_size"], event["response_size"]) == (12, len(response.data))
    assert event["consumer_id"] == hash_consumer("k2")


@pytest.mark.parametrize("sampler", [ALWAYS_ON, ALWAYS_OFF, DEFAULT_ON, DEFAULT_OFF])
def test_sampler_fields_and_the_public_reading_agree(
    sampler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = (_sdk.static_decision(sampler), _sdk.parent_based_delegates(sampler))
    monkeypatch.setattr(_sdk._context, "SAMPLER_FIELDS", False)
    assert _sdk.static_decision(sampler) == fast[0]
    # Without the fields a ParentBased sampler gets the general wrap, which asks it.
    assert _sdk.parent_based_delegates(sampler) is None
    if fast[1] is not None:
        assert type(wrap(sampler)) is ServerRecordOnly


def test_processors_of_a_provider_and_of_something_else() -> None:
    provider = TracerProvider()
    with capture_events(provider) as captured:
        assert captured.processor in _sdk.span_processors(provider)
    assert _sdk.span_processors(object()) == ()


# --- Patches and the reset -----------------------------------------------------------


@pytest.fixture
def restored() -> Iterator[None]:
    """A reset also resets the guard's handler: give the test suite its own back."""
    handler = _guard._Guard.handler
    yield
    _guard.set_handler(handler)


def test_reset_undoes_every_patch_and_a_processor_puts_them_back(
    restored: None, tmp_path: Any
) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    def originals() -> tuple[object, ...]:
        return (
            OpenTelemetryMiddleware.__dict__["__init__"],
            FlaskInstrumentor.__dict__["_instrument"],
            FlaskInstrumentor.__dict__["instrument_app"],
            DjangoInstrumentor.__dict__["_instrument"],
        )

    processor = PeekApiSpanProcessor(api_key="k", storage_path=str(tmp_path))
    patched = originals()
    reset_process_state()
    plain = originals()
    assert all(a is not b for a, b in zip(patched, plain, strict=True))
    assert all(getattr(f, "__module__", "").startswith("opentelemetry") for f in plain[:2])
    again = PeekApiSpanProcessor(api_key="k", storage_path=str(tmp_path / "2"))
    assert all(a is not b for a, b in zip(originals(), plain, strict=True))
    processor.shutdown()
    again.shutdown()


def test_the_last_processor_to_shut_down_undoes_the_patches(restored: None, tmp_path: Any) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    reset_process_state()  # no processor left alive by earlier tests
    first = PeekApiSpanProcessor(api_key="k", storage_path=str(tmp_path / "a"))
    second = PeekApiSpanProcessor(api_key="k", storage_path=str(tmp_path / "b"))
    patched = OpenTelemetryMiddleware.__dict__["__init__"]
    first.shutdown()
    assert OpenTelemetryMiddleware.__dict__["__init__"] is patched
    second.shutdown()
    assert OpenTelemetryMiddleware.__dict__["__init__"] is not patched
    assert OpenTelemetryMiddleware.__init__.__module__.startswith("opentelemetry")


def test_replace_attribute_is_undone_and_happens_once(restored: None) -> None:
    class Instrumentor:
        def hook(self) -> str:
            return "theirs"

    assert _sdk.replace_attribute(Instrumentor, "hook", lambda self: "ours")
    assert not _sdk.replace_attribute(Instrumentor, "hook", lambda self: "again")
    assert _sdk.replace_attribute(Instrumentor, "extra", 1)
    assert (Instrumentor().hook(), Instrumentor.extra) == ("ours", 1)  # type: ignore[attr-defined]
    reset_process_state()
    assert Instrumentor().hook() == "theirs"
    assert not hasattr(Instrumentor, "extra")


def test_reset_puts_the_process_state_back(restored: None, tmp_path: Any) -> None:
    processor = PeekApiSpanProcessor(
        api_key="k", storage_path=str(tmp_path), consumer_headers=["x-tenant"]
    )
    STATS.drop_quietly("disabled")
    assert stats()["dropped"]["disabled"] == 1  # type: ignore[index]
    assert STATE.rule.consumer_headers == ("x-tenant",)
    assert STATE.processors >= 1
    STATE.cut_message_spans = True
    _guard.set_handler(lambda exc: None)
    reset_process_state()
    assert STATE.rule is DEFAULT_RULE
    assert (STATE.processors, STATE.pipelines, STATE.cut_message_spans) == (0, {}, False)
    assert not STATE.distro_active
    assert _guard._Guard.handler is _guard._log
    assert stats()["dropped"]["disabled"] == 0  # type: ignore[index]
    processor.shutdown()


def test_reset_puts_the_sigterm_handling_back() -> None:
    """The SIGTERM side of the process state: our handler, the unraisable hook, the
    listeners and a deferred action are gone after a reset, as at import."""
    import signal
    import sys

    from peekapi_otel.delivery import _shutdown

    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    hook = sys.unraisablehook
    try:
        assert _shutdown.install_sigterm_handler()
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert sys.unraisablehook is not hook
        ran: list[str] = []
        _shutdown.SIGNALS.actions.append(lambda: ran.append("late"))
        _shutdown.SIGNALS.deferred = True
        reset_process_state()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert sys.unraisablehook is hook
        assert not _shutdown.SIGNALS.deferred
        assert _shutdown.SIGNALS.actions == []
        assert _shutdown.SIGNALS.listeners == []
        assert _shutdown.SIGNALS.installed_pid == 0
        _shutdown.run_deferred()
        assert ran == []  # the action a signal left before the reset never runs

        # A server's handler that we chained is given back as it was.
        def server_handler(signum: int, frame: object) -> None: ...

        signal.signal(signal.SIGTERM, server_handler)
        assert _shutdown.chain_sigterm()
        assert signal.getsignal(signal.SIGTERM) is not server_handler
        reset_process_state()
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.unraisablehook = hook


# --- One consumer rule per process ---------------------------------------------------


def test_a_second_processor_with_another_rule_is_refused(tmp_path: Any) -> None:
    first = PeekApiSpanProcessor(
        api_key="k", storage_path=str(tmp_path / "a"), consumer_headers=["x-tenant"]
    )
    TracerProvider().add_span_processor(first)
    try:
        # The same rule on another provider is fine.
        same = PeekApiSpanProcessor(
            api_key="k2", storage_path=str(tmp_path / "b"), consumer_headers=["x-tenant"]
        )
        with pytest.raises(ValueError, match=r"consumer_headers=\['x-tenant'\]"):
            PeekApiSpanProcessor(
                api_key="k3", storage_path=str(tmp_path / "c"), consumer_headers=["x-other"]
            )
        with pytest.raises(ValueError, match="identify_consumer"):
            PeekApiSpanProcessor(
                api_key="k3",
                storage_path=str(tmp_path / "c"),
                consumer_headers=["x-tenant"],
                identify_consumer=lambda headers: "c",
            )
        # The first one's consumers are untouched by the refused ones, and nothing was
        # built for them.
        assert STATE.rule.consumer_headers == ("x-tenant",)
        assert len(STATE.rule_holders) == 2
        assert not [
            p
            for p in STATE.pipelines.values()
            if p.options.consumer_headers != ("x-tenant",) and not p.closed
        ]
        same.shutdown()
    finally:
        first.shutdown()
    # Once the holders are gone another rule may take over.
    other = PeekApiSpanProcessor(
        api_key="k3", storage_path=str(tmp_path / "c"), consumer_headers=["x-other"]
    )
    assert STATE.rule.consumer_headers == ("x-other",)
    other.shutdown()


def test_capture_events_may_use_its_own_rule_beside_a_live_processor(tmp_path: Any) -> None:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    app_processor = PeekApiSpanProcessor(api_key="k", storage_path=str(tmp_path))
    provider = TracerProvider()
    try:
        with capture_events(provider, consumer_headers=("x-tenant",)) as captured:
            app = OpenTelemetryMiddleware(_app, tracer_provider=provider)
            _call(app, "GET", "/", [(b"x-tenant", b"t1")], version="1.1")
            (event,) = captured.events
        assert event["consumer_id"] == hash_consumer("t1")
        assert STATE.rule.consumer_headers == app_processor.options.consumer_headers
    finally:
        app_processor.shutdown()
