"""``Options.from_env``: argument > environment > default, and what is refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from peekapi_otel import Options, PeekApiSpanExporter
from peekapi_otel.core._options import DEFAULT_ENDPOINT, ENVIRONMENT_VARIABLES

LOGGER = "peekapi_otel"


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(LOGGER) and r.levelno >= logging.WARNING
    ]


def test_defaults_match_the_spec() -> None:
    options = Options.from_env({})
    assert options.api_key == ""
    assert options.endpoint == DEFAULT_ENDPOINT == "https://ingest.peekapi.dev/v1/events"
    assert options.flush_interval == 5.0
    assert options.batch_size == 100
    assert options.max_buffer_size == 10_000
    assert options.max_storage_bytes == 52_428_800
    assert options.max_event_bytes == 65_536
    assert options.storage_path is None
    assert options.timeout == 5.0
    assert options.shutdown_timeout == 5.0
    assert options.collect_query_string is False
    assert options.path_source == "route"
    assert options.consumer_headers == ("x-api-key", "authorization")
    assert options.metadata is None
    assert options.compression == "none"
    assert options.record_all is True
    assert options.debug is False
    assert options.identify_consumer is None
    assert options.on_error is None
    assert options.warnings == ()
    assert options.problem is not None
    assert "PEEKAPI_API_KEY" in options.problem


def test_every_variable_is_read(tmp_path: Path) -> None:
    env = {
        "PEEKAPI_API_KEY": " key-1 ",
        "PEEKAPI_ENDPOINT": "http://127.0.0.1:9/v1/events",
        "PEEKAPI_FLUSH_INTERVAL": "0.5",
        "PEEKAPI_BATCH_SIZE": "7",
        "PEEKAPI_MAX_BUFFER_SIZE": "70",
        "PEEKAPI_MAX_STORAGE_BYTES": "4096",
        "PEEKAPI_MAX_EVENT_BYTES": "2048",
        "PEEKAPI_STORAGE_PATH": str(tmp_path),
        "PEEKAPI_TIMEOUT": "1.5",
        "PEEKAPI_SHUTDOWN_TIMEOUT": "0",
        "PEEKAPI_COLLECT_QUERY_STRING": "YES",
        "PEEKAPI_PATH_SOURCE": "Raw",
        "PEEKAPI_CONSUMER_HEADERS": " X-Client-Id , x-api-key ,",
        "PEEKAPI_METADATA": '{"service": "shop", "n": 1}',
        "PEEKAPI_COMPRESSION": "gzip",
        "PEEKAPI_RECORD_ALL": "off",
        "PEEKAPI_DEBUG": "On",
    }
    assert set(env) == set(ENVIRONMENT_VARIABLES)
    options = Options.from_env(env)
    assert options.api_key == "key-1"
    assert options.endpoint == "http://127.0.0.1:9/v1/events"
    assert options.flush_interval == 0.5
    assert options.batch_size == 7
    assert options.max_buffer_size == 70
    assert options.max_storage_bytes == 4096
    assert options.max_event_bytes == 2048
    assert options.storage_path == str(tmp_path)
    assert options.timeout == 1.5
    assert options.shutdown_timeout == 0.0
    assert options.collect_query_string is True
    assert options.path_source == "raw"
    assert options.consumer_headers == ("x-client-id", "x-api-key")
    assert options.metadata == {"service": "shop", "n": 1}
    assert options.compression == "gzip"
    assert options.record_all is False
    assert options.debug is True
    assert options.warnings == ()
    assert options.problem is None


def test_os_environ_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEEKAPI_API_KEY", "from-env")
    monkeypatch.setenv("PEEKAPI_BATCH_SIZE", "3")
    options = Options.from_env()
    assert (options.api_key, options.batch_size) == ("from-env", 3)


def test_argument_beats_environment_beats_default() -> None:
    env = {"PEEKAPI_API_KEY": "env-key", "PEEKAPI_BATCH_SIZE": "9", "PEEKAPI_DEBUG": "true"}
    options = Options.from_env(env, api_key="arg-key", batch_size=4)
    assert options.api_key == "arg-key"
    assert options.batch_size == 4
    assert options.debug is True  # from the environment
    assert options.timeout == 5.0  # default


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("On", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_booleans_in_any_case(text: str, expected: bool) -> None:
    assert Options.from_env({"PEEKAPI_DEBUG": text}).debug is expected
    assert Options.from_env({}, debug=text).debug is expected


def test_blank_environment_values_mean_unset(caplog: pytest.LogCaptureFixture) -> None:
    options = Options.from_env({"PEEKAPI_BATCH_SIZE": "  ", "PEEKAPI_ENDPOINT": ""})
    assert options.batch_size == 100
    assert options.endpoint == DEFAULT_ENDPOINT
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(
    ("var", "value", "field", "default"),
    [
        ("PEEKAPI_FLUSH_INTERVAL", "soon", "flush_interval", 5.0),
        ("PEEKAPI_FLUSH_INTERVAL", "-1", "flush_interval", 5.0),
        ("PEEKAPI_FLUSH_INTERVAL", "0", "flush_interval", 5.0),
        ("PEEKAPI_FLUSH_INTERVAL", "nan", "flush_interval", 5.0),
        ("PEEKAPI_BATCH_SIZE", "ten", "batch_size", 100),
        ("PEEKAPI_BATCH_SIZE", "-5", "batch_size", 100),
        ("PEEKAPI_BATCH_SIZE", "2.5", "batch_size", 100),
        ("PEEKAPI_MAX_BUFFER_SIZE", "0", "max_buffer_size", 10_000),
        ("PEEKAPI_MAX_STORAGE_BYTES", "-1", "max_storage_bytes", 52_428_800),
        ("PEEKAPI_MAX_EVENT_BYTES", "big", "max_event_bytes", 65_536),
        ("PEEKAPI_TIMEOUT", "-0.1", "timeout", 5.0),
        ("PEEKAPI_SHUTDOWN_TIMEOUT", "-3", "shutdown_timeout", 5.0),
        ("PEEKAPI_DEBUG", "maybe", "debug", False),
        ("PEEKAPI_RECORD_ALL", "sometimes", "record_all", True),
        ("PEEKAPI_COLLECT_QUERY_STRING", "2", "collect_query_string", False),
        ("PEEKAPI_PATH_SOURCE", "template", "path_source", "route"),
        ("PEEKAPI_COMPRESSION", "brotli", "compression", "none"),
        ("PEEKAPI_METADATA", "[1, 2]", "metadata", None),
        ("PEEKAPI_METADATA", '"text"', "metadata", None),
        ("PEEKAPI_METADATA", "{not json", "metadata", None),
        ("PEEKAPI_CONSUMER_HEADERS", " , ,", "consumer_headers", ("x-api-key", "authorization")),
    ],
)
def test_bad_environment_value_warns_once_and_uses_the_default(
    caplog: pytest.LogCaptureFixture, var: str, value: str, field: str, default: object
) -> None:
    caplog.set_level(logging.WARNING)
    options = Options.from_env({var: value, "PEEKAPI_API_KEY": "k"})
    assert getattr(options, field) == default
    (message,) = warnings_of(caplog)
    assert var in message
    assert "default" in message
    assert options.warnings == (message.removeprefix("peekapi-otel: "),)
    assert options.api_key == "k"  # the rest still applies
    assert options.problem is None


def test_api_key_is_masked_in_messages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    Options.from_env({"PEEKAPI_ENDPOINT": "ftp://x", "PEEKAPI_API_KEY": "super-secret-key"})
    assert "super-secret-key" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "https://ingest.peekapi.dev/v1/events",
        "https://example.com:8443/in",
        "http://localhost:8080/v1/events",
        "http://127.0.0.1/v1/events",
        "http://127.9.9.9:1/x",
        "http://[::1]:9/v1/events",
        "http://api.localhost/v1/events",
    ],
)
def test_accepted_endpoints(url: str) -> None:
    assert Options.from_env({}, endpoint=url).endpoint == url
    assert Options.from_env({"PEEKAPI_ENDPOINT": url}).endpoint == url


REFUSED = [
    ("http://10.0.0.1/v1/events", "plain http"),
    ("https://10.0.0.1/v1/events", "private"),
    ("http://169.254.169.254/latest/meta-data", "plain http"),
    ("https://169.254.169.254/latest/meta-data", "private, link-local"),
    ("https://192.168.1.10/v1/events", "private"),
    ("https://172.16.0.1/v1/events", "private"),
    ("https://[fc00::1]/v1/events", "private"),
    ("https://[fe80::1]/v1/events", "private"),
    ("https://0.0.0.0/v1/events", "private"),
    ("https://metadata.google.internal/computeMetadata/v1", "metadata"),
    ("https://user:s3cretpw@host.example/v1/events", "user-info"),
    ("https://user@host.example/v1/events", "user-info"),
    ("ftp://ingest.example/v1/events", "https"),
    ("http://ingest.example/v1/events", "plain http"),
    ("https:///v1/events", "no host"),
    ("https://host.example:notaport/x", "not a valid URL"),
    ("ftp://user:s3cretpw@ingest.example/v1/events", "https"),
    ("https://user:s3cretpw@10.0.0.1:notaport/x", "not a valid URL"),
    ("localhost:8787/v1/events", "has no scheme"),
    ("127.0.0.1:8787/v1/events", "'http://127.0.0.1:8787/v1/events'"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_endpoint_argument_raises_value_error(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match="endpoint") as info:
        Options.from_env({}, endpoint=url)
    assert reason in str(info.value)
    assert "s3cretpw" not in str(info.value)  # a password in the URL is never echoed


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_endpoint_env_disables_export_with_one_error(
    caplog: pytest.LogCaptureFixture, url: str, reason: str
) -> None:
    caplog.set_level(logging.WARNING)
    options = Options.from_env({"PEEKAPI_ENDPOINT": url, "PEEKAPI_API_KEY": "k"})
    # Never a silent fallback to the default endpoint.
    assert options.endpoint == ""
    assert options.problem is not None
    assert "disabled" in options.problem
    assert warnings_of(caplog) == []  # reported once, by whoever would have sent
    PeekApiSpanExporter(options=options)
    PeekApiSpanExporter(options=options)
    (message,) = warnings_of(caplog)
    assert "PEEKAPI_ENDPOINT" in message
    assert "refused" in message
    assert reason in message
    assert "s3cretpw" not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flush_interval": "soon"}, "flush_interval"),
        ({"flush_interval": -1}, "flush_interval"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"flush_interval": True}, "flush_interval"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"batch_size": "many"}, "batch_size"),
        ({"max_buffer_size": -10}, "max_buffer_size"),
        ({"max_storage_bytes": 0}, "max_storage_bytes"),
        ({"max_event_bytes": "x"}, "max_event_bytes"),
        ({"timeout": -2}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"shutdown_timeout": -1}, "shutdown_timeout"),
        ({"debug": "maybe"}, "debug"),
        ({"debug": 2}, "debug"),
        ({"record_all": "perhaps"}, "record_all"),
        ({"collect_query_string": "x"}, "collect_query_string"),
        ({"path_source": "template"}, "path_source"),
        ({"compression": "br"}, "compression"),
        ({"metadata": "[1]"}, "metadata"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": "{bad"}, "metadata"),
        ({"metadata": {"x": object()}}, "metadata"),
        ({"consumer_headers": ""}, "consumer_headers"),
        ({"consumer_headers": []}, "consumer_headers"),
        ({"api_key": 123}, "api_key"),
        ({"endpoint": "ftp://x"}, "endpoint"),
        ({"identify_consumer": "not callable"}, "identify_consumer"),
        ({"on_error": 5}, "on_error"),
        ({"no_such_option": 1}, "no_such_option"),
    ],
)
def test_bad_argument_raises_value_error_naming_it(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Options.from_env({}, **kwargs)


def test_arguments_accept_python_values(tmp_path: Path) -> None:
    options = Options.from_env(
        {},
        api_key="k",
        flush_interval=1,
        batch_size=2.0,
        storage_path=tmp_path,
        consumer_headers=["X-Tenant"],
        metadata={"region": "eu"},
        debug=True,
        identify_consumer=lambda headers: headers.get("x-tenant"),
    )
    assert options.flush_interval == 1.0
    assert options.batch_size == 2
    assert options.storage_path == str(tmp_path)
    assert options.consumer_headers == ("x-tenant",)
    assert options.metadata == {"region": "eu"}
    assert options.identify_consumer is not None
    assert options.identify_consumer({"x-tenant": "acme"}) == "acme"


def test_spool_dir_is_per_endpoint_and_key(tmp_path: Path) -> None:
    a = Options.from_env({}, api_key="a", storage_path=tmp_path)
    b = Options.from_env({}, api_key="b", storage_path=tmp_path)
    c = Options.from_env({}, api_key="a", storage_path=tmp_path, endpoint="https://e.example/")
    dirs = {a.spool_dir(), b.spool_dir(), c.spool_dir()}
    assert len(dirs) == 3
    assert all(d.parent == tmp_path for d in dirs)
    assert "a" not in {d.name for d in dirs}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "http://10.0.0.1/v1/events"},
        {"endpoint": "https://169.254.169.254/latest/meta-data"},
        {"endpoint": "http://169.254.169.254/latest/meta-data"},
        {"endpoint": "https://user:s3cretpw@host.example/v1/events"},
        {"endpoint": "ftp://ingest.example/v1/events"},
        {"endpoint": "http://ingest.example/v1/events"},
        {"endpoint": ""},
        {"batch_size": -1},
        {"flush_interval": 0},
        {"path_source": "template"},
        {"metadata": ["a"]},
        {"identify_consumer": "not callable"},
    ],
)
def test_options_built_directly_are_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))) as info:
        Options(api_key="k", **kwargs)  # type: ignore[arg-type]
    assert "s3cretpw" not in str(info.value)


def test_options_built_directly_never_reach_an_exporter() -> None:
    # The exporter takes Options as they are: the refusal has to happen at construction.
    with pytest.raises(ValueError, match="private, link-local"):
        PeekApiSpanExporter(options=Options(api_key="k", endpoint="https://10.0.0.1/v1/events"))


def test_options_built_directly_are_normalised_like_from_env() -> None:
    built = Options(api_key=" k ", consumer_headers=["X-Token"], path_source="RAW", batch_size=7.0)  # type: ignore[arg-type]
    assert built == Options.from_env(
        {}, api_key="k", consumer_headers="x-token", path_source="raw", batch_size=7
    )
    assert built.consumer_headers == ("x-token",)
    assert Options() == Options.from_env({})


@pytest.mark.parametrize(
    "url",
    [
        "ftp://user:s3cretpw@ingest.example/v1/events",
        "https://user:s3cretpw@host.example:notaport/x",
        "http://user:s3cretpw@10.0.0.1/v1/events",
        "user:s3cretpw@ingest.example/v1/events",
    ],
)
def test_user_info_is_masked_in_every_refusal(url: str) -> None:
    with pytest.raises(ValueError, match="endpoint") as info:
        Options.from_env({}, endpoint=url)
    assert "s3cretpw" not in str(info.value)
    assert "***@" in str(info.value)
    options = Options.from_env({"PEEKAPI_ENDPOINT": url, "PEEKAPI_API_KEY": "k"})
    assert "s3cretpw" not in (options.problem or "")
    assert "***@" in (options.problem or "")


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("localhost:8787/v1/events", "'http://localhost:8787/v1/events'"),
        ("127.0.0.1:8787/v1/events", "'http://127.0.0.1:8787/v1/events'"),
        ("[::1]:8787/v1/events", "'http://[::1]:8787/v1/events'"),
        ("ingest.example.com/v1/events", "'https://ingest.example.com/v1/events'"),
    ],
)
def test_missing_scheme_is_named_and_a_fix_suggested(url: str, suggestion: str) -> None:
    options = Options.from_env({"PEEKAPI_ENDPOINT": url, "PEEKAPI_API_KEY": "k"})
    assert options.problem is not None
    assert "has no scheme" in options.problem
    assert suggestion in options.problem
    assert "must use https:// (got" not in options.problem


def test_repr_never_shows_the_api_key_or_user_info() -> None:
    options = Options(api_key="proj-live-5e3c9a1b7d")
    assert "proj-live-5e3c9a1b7d" not in repr(options)
    assert "endpoint='https://ingest.peekapi.dev/v1/events'" in repr(options)


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("http:/localhost:8787/v1/events", "'http://localhost:8787/v1/events'"),
        ("https:ingest.example.com/v1/events", "'https://ingest.example.com/v1/events'"),
    ],
)
def test_scheme_without_slashes_is_named_and_a_fix_suggested(url: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match="missing '//' after the scheme") as info:
        Options.from_env({}, endpoint=url)
    assert suggestion in str(info.value)
