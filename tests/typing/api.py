"""Type-checked use of the public API (``mypy --strict tests/typing/api.py``); never run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

import peekapi_otel
from peekapi_otel import Options, PeekApiSpanExporter, PeekApiSpanProcessor, stats
from peekapi_otel.hooks import (
    include_pyramid,
    instrument_aiohttp_server,
    instrument_falcon_asgi,
    instrumentor_kwargs,
)
from peekapi_otel.testing import CapturedEvents, capture_events


def tenant(headers: Mapping[str, str]) -> str | None:
    return headers.get("x-tenant")


def on_error(exc: BaseException) -> None:
    print(f"peekapi send failed: {exc}")


def programmatic() -> PeekApiSpanProcessor:
    return peekapi_otel.configure(
        api_key="key",
        endpoint="https://ingest.peekapi.dev/v1/events",
        flush_interval=2.0,
        collect_query_string=True,
        metadata={"service": "shop"},
        identify_consumer=tenant,
        on_error=on_error,
    )


def own_provider() -> TracerProvider:
    provider = TracerProvider()
    options: Options = Options.from_env({"PEEKAPI_API_KEY": "key"}, batch_size=50)
    exporter = PeekApiSpanExporter(options=options)
    processor = PeekApiSpanProcessor(exporter)
    provider.add_span_processor(processor)
    flushed: bool = processor.force_flush(5_000)
    assert flushed or not exporter.enabled
    return provider


def hooks_for_instrumentors() -> dict[str, Any]:
    def mine(span: Any, scope: dict[str, Any]) -> None:
        return None

    return instrumentor_kwargs("fastapi", server_request_hook=mine)


def more_frameworks(falcon_asgi_app: Any, pyramid_config: Any) -> Any:
    litestar_settings: dict[str, Any] = instrumentor_kwargs("litestar")
    assert "scope_span_details_extractor" in litestar_settings
    pyramid_config.include(include_pyramid)
    instrument_aiohttp_server()
    return instrument_falcon_asgi(falcon_asgi_app)


def counters() -> int:
    snapshot: dict[str, object] = stats()
    dropped = snapshot["dropped"]
    assert isinstance(dropped, dict)
    return int(dropped.get("consumer_error", 0))


def in_tests(provider: TracerProvider) -> list[dict[str, Any]]:
    captured: CapturedEvents
    with capture_events(provider, identify_consumer=tenant) as captured:
        pass
    return captured.events
