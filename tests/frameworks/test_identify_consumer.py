"""``identify_consumer`` through every framework's glue: the callback gets the raw
request headers (lower-case names) and its result is the consumer, for the frameworks
whose hooks read the request themselves."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _scenarios import SCENARIOS  # noqa: E402
from test_frameworks import PROCS, Run, _run_one  # noqa: E402

FRAMEWORKS = (
    "litestar",
    "bottle",
    "falcon_wsgi",
    "falcon_asgi",
    "pyramid",
    "aiohttp",
    "tornado",
    "quart",
)


@pytest.fixture(scope="module")
def identify_runs() -> Iterator[dict[str, Run]]:
    with (
        tempfile.TemporaryDirectory(prefix="peekapi-identify-") as tmp,
        ThreadPoolExecutor(max_workers=3) as pool,
    ):
        futures = {
            fw: pool.submit(_run_one, fw, "default", Path(tmp), "identify") for fw in FRAMEWORKS
        }
        yield {fw: f.result() for fw, f in futures.items()}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_identify_consumer_names_the_consumer(
    identify_runs: dict[str, Run], framework: str
) -> None:
    run = identify_runs[framework]
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(run.events) == len(SCENARIOS) * len(PROCS)
    by_span = {(e["metadata"]["span_id"], e["metadata"]["proc"]): e for e in run.events}
    for sc in run.report["scenarios"]:
        (span,) = sc["server_spans"]
        for proc in PROCS:
            event = by_span[(span["span_id"], proc)]
            expected = "tenant-acme" if sc["name"] == "json" else None
            assert event["consumer_id"] == expected, (framework, sc["name"], proc)
