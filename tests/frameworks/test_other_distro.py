"""Another distro and configurator won (``OTEL_PYTHON_DISTRO``/``_CONFIGURATOR`` name
theirs): the PeekAPI pre-instrument hook attaches the processor and chains its glue into
the Falcon and Tornado instrumentors (hooks) and the Pyramid and aiohttp ones (tween,
middleware), under the real ``opentelemetry-instrument``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import Ingest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fw_apps.common import TOKEN_SECRET  # noqa: E402

pytestmark = pytest.mark.slow

ROUTES = {
    "falcon": "/items/{item_id:int}",
    "pyramid": "/items/{item_id:\\d+}",
    "aiohttp": "/items/{item_id}",
    "tornado": "/items/{item_id}",
}


def test_glue_is_chained_when_another_distro_wins(ingest: Ingest) -> None:
    frameworks = sorted(ROUTES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PEEKAPI_"))}
    env.update(
        {
            "OTEL_PYTHON_DISTRO": "someone-elses",  # no such distro: the default one runs
            "OTEL_PYTHON_CONFIGURATOR": "sdk",  # the SDK's own configurator
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "django",
            "PEEKAPI_API_KEY": "other-distro-key",
            "PEEKAPI_ENDPOINT": ingest.url,
            "PEEKAPI_FLUSH_INTERVAL": "0.2",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    proc = subprocess.run(
        [str(instrument), sys.executable, str(HERE / "_other_distro_app.py"), *frameworks],
        cwd=str(HERE),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr[-3000:]
    sizes = {
        (parts[0], parts[1]): int(parts[3])
        for parts in (line.split() for line in proc.stdout.splitlines())
        if len(parts) == 4
    }
    events = ingest.wait_for(2 * len(frameworks), timeout=10)
    assert len(events) == 2 * len(frameworks), events
    token_hash = "hash_" + hashlib.sha256(TOKEN_SECRET.encode()).hexdigest()[:12]
    for i, framework in enumerate(frameworks):
        param, create = events[2 * i : 2 * i + 2]
        where = (framework, param, create)
        assert (param["method"], create["method"]) == ("GET", "POST"), where
        assert param["path"] == ROUTES[framework], where
        assert param["consumer_id"] == token_hash, where  # a chained hook: no header capture
        assert param["response_size"] == sizes[(framework, "param")], where
        assert create["request_size"] == 7, where
        assert create["status_code"] == 201, where
        assert create["response_size"] == sizes[(framework, "create")], where
