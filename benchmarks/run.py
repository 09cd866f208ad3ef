#!/usr/bin/env python
"""peekapi-otel benchmarks: per-request overhead of each way in, export throughput,
memory/loss.

    python benchmarks/run.py [--quick] [--json OUT] [--only overhead,throughput,memory]
        [--frameworks raw_asgi,fastapi,raw_wsgi,flask,django] [--cut]

The overhead section measures each way in (zero code, ``configure()``, a processor on
the user's own provider; see ``_apps.py``) on each framework and prints
``(c - b) / (d - a)``: what peekapi-otel adds on top of OpenTelemetry wired the same way,
against what the ``peekapi`` 0.1.0 middleware adds to the bare app.

Needs the dev environment (OpenTelemetry SDK + the fastapi/flask/django instrumentations,
peekapi-otel installed) plus ``pip install peekapi==0.1.0`` for the comparison.

The machine is assumed noisy: every figure is a ratio or difference taken side by side in
one run. Variants run in short interleaved rounds (the order rotates every round) and are
paired per round, in several generations of fresh worker processes (one process of the
same code runs faster or slower than another by more than what is measured); tables
show the median of the per-round values and the inter-quartile range [p25, p75]. CPU is
``time.process_time()`` of the process doing the work (all its threads), measured from
the start of a round until the ingest acknowledged everything the round produced.
A loopback ingest (``benchmarks/_ingest.py``) runs as its own process.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _apps import (  # noqa: E402
    FRAMEWORKS,
    PEEKAPI_MIDDLEWARE,
    SENDERS,
    WAYS,
    child_env,
    variants_for,
)

PY = sys.executable

QUICK = {
    "overhead": {"requests": 300, "warmup": 2, "rounds": 3, "generations": 3},
    "one_process": {"requests": 200, "warmup": 1, "rounds": 3, "generations": 1},
    "throughput": {"events": 3000, "rounds": 7, "batch_size": 100},
    "memory": {"events": 100_000, "repeats": 1},
}
FULL = {
    # 7 variants x 5 frameworks x 6 generations of 5 rounds: about 5 minutes on a
    # 2-core machine.
    "overhead": {"requests": 500, "warmup": 2, "rounds": 5, "generations": 6},
    # 5 variants x 6 (framework, way) x 4 processes of 10 rounds: about 2 minutes.
    "one_process": {"requests": 500, "warmup": 2, "rounds": 10, "generations": 4},
    "throughput": {"events": 5000, "rounds": 25, "batch_size": 100},
    "memory": {"events": 100_000, "repeats": 3},
}
PACKAGES = (
    "peekapi-otel",
    "peekapi",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "opentelemetry-instrumentation-asgi",
    "opentelemetry-instrumentation-wsgi",
    "opentelemetry-instrumentation-fastapi",
    "opentelemetry-instrumentation-flask",
    "opentelemetry-instrumentation-django",
    "fastapi",
    "starlette",
    "flask",
    "werkzeug",
    "django",
)


# --- small helpers ------------------------------------------------------------------


def q(values: list[float]) -> tuple[float, float, float]:
    """(median, p25, p75)."""
    if not values:
        return (float("nan"),) * 3
    if len(values) == 1:
        return values[0], values[0], values[0]
    p25, p50, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return p50, p25, p75


def fmt(values: list[float], digits: int = 1) -> str:
    m, lo, hi = q(values)
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [title, line, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    out.append(line)
    return "\n".join(out)


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": sys.version,
        "implementation": platform.python_implementation(),
        "loadavg_at_start": load,
        "packages": versions,
    }


class Ingest:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PY, str(HERE / "_ingest.py")], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/v1/events"

    def count(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=5) as r:
            return int(json.loads(r.read())["events"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("@@"):
            return json.loads(line[2:])
    raise RuntimeError("no result line in output:\n" + text[-3000:])


# --- 1 + 4: per-request overhead ----------------------------------------------------


class Worker:
    def __init__(self, framework: str, variant: str, ingest: str, logdir: Path) -> None:
        self.variant = variant
        storage = tempfile.mkdtemp(prefix=f"peekapi-bench-{framework}-{variant}-")
        self.log = logdir / f"worker-{framework}-{variant}.log"
        self.proc = subprocess.Popen(
            [
                PY,
                str(HERE / "_worker.py"),
                "--framework",
                framework,
                "--variant",
                variant,
                "--ingest",
                ingest,
                "--storage",
                storage,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "w"),  # noqa: SIM115 - lives as long as the worker
            text=True,
            env=child_env(framework, variant),
            cwd=str(HERE.parent),
        )

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"worker {self.variant} died; see {self.log}:\n{self.log.read_text()[-3000:]}"
                )
            if line.startswith("@@"):
                return json.loads(line[2:])

    def cmd(self, text: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        try:
            self.cmd("quit")
        finally:
            self.proc.wait(30)


def overhead(
    ingest: Ingest, cfg: dict[str, int], frameworks: list[str], logdir: Path, cut: bool
) -> dict[str, Any]:
    """Each framework's variants in ``generations`` sets of fresh worker processes.

    One process is faster or slower than another running the same code by more than
    what peekapi-otel adds (memory layout, hash seed: +-10 % on raw ASGI here), so a
    single process per variant would fix that offset into every round. Each generation
    starts new processes and pairs its rounds only among them; the tables take the
    median over all rounds of all generations.
    """
    n, rounds, warmup = cfg["requests"], cfg["rounds"], cfg["warmup"]
    generations = cfg["generations"]
    out: dict[str, Any] = {"config": cfg, "frameworks": {}, "cut": cut}
    for fw in frameworks:
        variants = list(variants_for(fw, cut))
        t0 = time.monotonic()
        before = ingest.count()
        samples: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        infos: dict[str, Any] = {}
        stats: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for generation in range(generations):
            workers = {v: Worker(fw, v, ingest.url, logdir) for v in variants}
            try:
                infos = {v: w.read() for v, w in workers.items()}
                for _ in range(warmup):
                    for v in variants:
                        workers[v].cmd(f"run {n}")
                for r in range(rounds):
                    k = (generation * rounds + r) % len(variants)
                    for v in variants[k:] + variants[:k]:
                        res = workers[v].cmd(f"run {n}")
                        res["us_per_request"] = res["cpu"] / n * 1e6
                        res["generation"] = generation
                        samples[v].append(res)
                for v, w in workers.items():
                    stats[v].append(w.cmd("stats"))
            finally:
                for w in workers.values():
                    w.close()
        delivered = ingest.count() - before
        senders = [v for v in variants if v in SENDERS]
        # Each Django worker with the peekapi middleware sends one more (see _apps.build).
        django_extra = sum(v in PEEKAPI_MIDDLEWARE for v in variants) if fw == "django" else 0
        expected = generations * (len(senders) * n * (warmup + rounds) + django_extra)
        out["frameworks"][fw] = {
            "requests_per_round": n,
            "generations": generations,
            "samples": samples,
            "workers": infos,
            "stats": stats,
            "ingest_events_received": delivered,
            "ingest_events_expected": expected,
            "all_ok": all(s["ok"] for v in variants for s in samples[v]),
            "seconds": round(time.monotonic() - t0, 1),
        }
        print(
            f"  {fw}: {generations} generations x {rounds} rounds x {n} requests x "
            f"{len(variants)} variants in {time.monotonic() - t0:.1f}s; "
            f"ingest got {delivered}/{expected} events",
            flush=True,
        )
        if delivered != expected:
            raise RuntimeError(f"{fw}: the ingest got {delivered} events, expected {expected}")
    return out


def per_round(samples: dict[str, list[dict[str, Any]]], v: str) -> list[float]:
    return [s["us_per_request"] for s in samples[v]]


def minus(x: list[float], y: list[float]) -> list[float]:
    return [xi - yi for xi, yi in zip(x, y, strict=True)]


def ratios(x: list[float], y: list[float]) -> list[float]:
    return [xi / yi if yi > 0 else float("inf") for xi, yi in zip(x, y, strict=True)]


def overhead_tables(result: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    ratio_rows, like_rows, us_rows, cut_rows = [], [], [], []
    summary: dict[str, Any] = {}
    for fw, data in result["frameworks"].items():
        s = data["samples"]
        a, d = per_round(s, "bare"), per_round(s, "peekapi")
        da = minus(d, a)
        # The peekapi middleware inside the OpenTelemetry app: what it adds there.
        d2 = per_round(s, "peekapi_otel")
        d2b = minus(d2, per_round(s, "otel"))
        summary[fw] = {
            "bare_us": q(a),
            "peekapi_us": q(d),
            "d_minus_a_us": q(da),
            "d2_minus_b_us": q(d2b),
            "ways": {},
        }
        ratio_row, like_row = [fw], [fw]
        for way, (b_name, c_name) in WAYS.items():
            b, c = per_round(s, b_name), per_round(s, c_name)
            cb = minus(c, b)
            ratio = ratios(cb, da)
            like = ratios(cb, d2b)
            ratio_row.append(fmt(ratio, 2))
            like_row.append(fmt(like, 2))
            us_rows.append(
                [fw, way, fmt(a), fmt(b), fmt(c), fmt(d), fmt(d2), fmt(cb), fmt(da), fmt(d2b)]
            )
            summary[fw]["ways"][way] = {
                "b": b_name,
                "c": c_name,
                "otel_us": q(b),
                "peek_us": q(c),
                "c_minus_b_us": q(cb),
                "ratio": q(ratio),
                "ratio_like_for_like": q(like),
                "per_round": {
                    "c_minus_b": cb,
                    "d_minus_a": da,
                    "d2_minus_b": d2b,
                    "ratio": ratio,
                    "ratio_like_for_like": like,
                },
            }
        ratio_row.append(fmt(da))
        ratio_rows.append(ratio_row)
        like_row.append(fmt(d2b))
        like_rows.append(like_row)
        if "otel_zero_all" in s:
            full, cut, zero = (per_round(s, v) for v in ("otel_zero_all", "otel_zero", "zero"))
            cut_rows.append([fw, fmt(full), fmt(cut), fmt(minus(full, cut)), fmt(zero)])
            summary[fw]["cut"] = {
                "otel_default_spans_us": q(full),
                "otel_cut_us": q(cut),
                "saved_us": q(minus(full, cut)),
            }
    tables = [
        table(
            "1. What each way in adds on top of OpenTelemetry, against what the peekapi "
            "0.1.0 middleware adds to a bare app: (c-b)/(d-a), median [p25, p75] of the "
            "per-round ratios (target <= 1.0, aim 0.5)",
            ["framework", *WAYS, "d-a us (peekapi adds)"],
            ratio_rows,
        ),
        table(
            "1a. Like for like: what each way in adds on top of OpenTelemetry, against what "
            "the peekapi 0.1.0 middleware adds to the same OpenTelemetry app (the otel "
            "variant): (c-b)/(d2-b), median [p25, p75] of the per-round ratios",
            ["framework", *WAYS, "d2-b us (peekapi adds to otel)"],
            like_rows,
        ),
        table(
            "1b. CPU us/request, median [p25, p75] over rounds (a bare, b OpenTelemetry "
            "alone wired the same way, c b + peekapi-otel, d peekapi 0.1.0 middleware, d2 "
            "the otel variant + the peekapi middleware)",
            [
                "framework",
                "way in",
                "a bare",
                "b otel",
                "c otel+ours",
                "d peekapi",
                "d2 otel+peekapi",
                "c-b",
                "d-a",
                "d2-b",
            ],
            us_rows,
        ),
    ]
    if cut_rows:
        tables.append(
            table(
                "4. The zero-code cut (ASGI, no trace exporter): OpenTelemetry alone with "
                "its default send/receive spans, without them, and zero code with "
                "PeekAPI (us/request)",
                ["framework", "otel default spans", "otel cut", "saved", "zero code + ours"],
                cut_rows,
            )
        )
    return tables, summary


# --- 1c: one process per way in ------------------------------------------------------


def one_process(
    ingest: Ingest, cfg: dict[str, int], frameworks: list[str], logdir: Path
) -> dict[str, Any]:
    """``_one_process.py`` for each (framework, way) it covers, in ``generations`` fresh
    processes; rounds are paired inside each process."""
    from _one_process import FRAMEWORKS as ONE_FRAMEWORKS
    from _one_process import WAYS as ONE_WAYS

    out: dict[str, Any] = {"config": cfg, "runs": {}}
    for fw in [f for f in frameworks if f in ONE_FRAMEWORKS]:
        for way in ONE_WAYS:
            t0 = time.monotonic()
            before = ingest.count()
            expected = 0
            rounds: dict[str, list[float]] = {}
            for generation in range(cfg["generations"]):
                storage = tempfile.mkdtemp(prefix=f"peekapi-bench-one-{fw}-{way}-")
                log = logdir / f"one-{fw}-{way}-{generation}.log"
                with open(log, "w") as err:
                    proc = subprocess.run(
                        [
                            PY,
                            str(HERE / "_one_process.py"),
                            *("--framework", fw, "--way", way, "--ingest", ingest.url),
                            *("--storage", storage, "--requests", str(cfg["requests"])),
                            *("--rounds", str(cfg["rounds"]), "--warmup", str(cfg["warmup"])),
                            *("--offset", str(generation)),
                        ],
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                        env=child_env(fw, "otel"),
                        cwd=str(HERE.parent),
                        timeout=1800,
                    )
                if proc.returncode != 0:
                    raise RuntimeError(f"{fw}/{way} failed; see {log}:\n{log.read_text()[-3000:]}")
                res = last_json(proc.stdout)
                if not res["ok"]:
                    raise RuntimeError(f"{fw}/{way}: a request did not answer 200; see {log}")
                expected += 3 * res["events_per_sender"]  # two peekapi clients and ours
                for v, values in res["us"].items():
                    rounds.setdefault(v, []).extend(values)
            delivered = ingest.count() - before
            out["runs"][f"{fw}/{way}"] = {
                "framework": fw,
                "way": way,
                "samples_us": rounds,
                "ingest_events_received": delivered,
                "ingest_events_expected": expected,
                "seconds": round(time.monotonic() - t0, 1),
            }
            print(
                f"  {fw} {way}: {cfg['generations']} processes in "
                f"{time.monotonic() - t0:.1f}s; ingest got {delivered}/{expected} events",
                flush=True,
            )
            if delivered != expected:
                raise RuntimeError(f"{fw}/{way}: the ingest got {delivered}, expected {expected}")
    return out


def one_process_table(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rows, summary = [], {}
    for key, run in data["runs"].items():
        us = run["samples_us"]
        cb = minus(us["ours"], us["otel"])
        da = minus(us["peekapi"], us["bare"])
        d2b = minus(us["peekapi_otel"], us["otel"])
        ratio, like = ratios(cb, da), ratios(cb, d2b)
        way = "configure()" if run["way"] == "configure" else "own provider"
        rows.append(
            [run["framework"], way, fmt(ratio, 2), fmt(like, 2), fmt(cb), fmt(da), fmt(d2b)]
        )
        summary[key] = {
            "ratio": q(ratio),
            "ratio_like_for_like": q(like),
            "c_minus_b_us": q(cb),
            "d_minus_a_us": q(da),
            "d2_minus_b_us": q(d2b),
        }
    t = table(
        "1c. In one process: the way in (c), OpenTelemetry alone (b), the bare app (a), the "
        "peekapi middleware (d) and the peekapi middleware inside OpenTelemetry (d2), "
        "paired per round; median [p25, p75] of the per-round values",
        ["framework", "way in", "(c-b)/(d-a)", "(c-b)/(d2-b)", "c-b us", "d-a us", "d2-b us"],
        rows,
    )
    return t, summary


# --- 2: export throughput -------------------------------------------------------------


def throughput(ingest: Ingest, cfg: dict[str, int], logdir: Path) -> dict[str, Any]:
    cmd = [
        PY,
        str(HERE / "_throughput.py"),
        "--ingest",
        ingest.url,
        "--events",
        str(cfg["events"]),
        "--rounds",
        str(cfg["rounds"]),
        "--batch-size",
        str(cfg["batch_size"]),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=child_env("", "bare"), cwd=str(HERE.parent)
    )
    (logdir / "throughput.log").write_text(proc.stderr)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    data = last_json(proc.stdout)
    data["config"] = cfg
    return data


def throughput_table(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    n = data["events_per_round"]
    ours = [n / s["ours"] for s in data["samples_cpu_s"]]
    theirs = [n / s["peekapi"] for s in data["samples_cpu_s"]]
    ratio = [o / t for o, t in zip(ours, theirs, strict=False)]
    rows = [
        [
            f"{n} x {len(ours)} rounds, batch {data['batch_size']}",
            fmt(ours, 0),
            fmt(theirs, 0),
            fmt(ratio, 2),
            ">= 2.0",
            f"{data['ingest_events_received']}/{data['ingest_events_expected']}",
        ]
    ]
    t = table(
        "2. Export throughput: events per client CPU-second, span end -> acked (median [p25, p75])",
        [
            "run",
            "peekapi-otel ev/CPU-s",
            "peekapi ev/CPU-s",
            "ratio ours/peekapi",
            "target",
            "acked",
        ],
        rows,
    )
    return t, {"ours_ev_per_cpu_s": q(ours), "peekapi_ev_per_cpu_s": q(theirs), "ratio": q(ratio)}


# --- 3: memory and loss ---------------------------------------------------------------


def memory(cfg: dict[str, int], logdir: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "peekapi": []}
    for i in range(cfg["repeats"]):
        for variant in ("ours", "peekapi") if i % 2 == 0 else ("peekapi", "ours"):
            proc = subprocess.run(
                [
                    PY,
                    str(HERE / "_memory.py"),
                    "--variant",
                    variant,
                    "--events",
                    str(cfg["events"]),
                ],
                capture_output=True,
                text=True,
                env=child_env("", "bare"),
                cwd=str(HERE.parent),
            )
            (logdir / f"memory-{variant}-{i}.log").write_text(proc.stderr)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-3000:])
            runs[variant].append(last_json(proc.stdout))
    return {"config": cfg, "runs": runs}


def memory_table(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rows, summary = [], {}
    for variant, runs in data["runs"].items():
        growth = [r["growth_kb"] / 1024 for r in runs]
        lost = [r["lost"] for r in runs]
        dropped = runs[-1].get("dropped", {})
        rows.append(
            [
                "peekapi-otel" if variant == "ours" else "peekapi 0.1.0",
                fmt(growth, 1),
                str(max(lost)),
                str(runs[-1]["sent"]),
                str(runs[-1]["spooled"]),
                str(runs[-1]["events_on_disk"]),
                json.dumps(dropped) if variant == "ours" else "(silent)",
                f"{statistics.median(r['burst_s'] for r in runs):.1f}s",
            ]
        )
        summary[variant] = {"growth_mb": q(growth), "lost_max": max(lost)}
    n = data["runs"]["ours"][0]["events"]
    t = table(
        f"3. Memory and loss: {n} events with the ingest down (connection refused); "
        "peak RSS growth median [p25, p75] over runs",
        ["client", "peak RSS growth MB", "lost", "sent", "spooled", "on disk", "drops", "burst"],
        rows,
    )
    ours, theirs = summary["ours"], summary["peekapi"]
    ok = ours["lost_max"] == 0 and ours["growth_mb"][0] <= theirs["growth_mb"][0]
    t += "\n(on disk for peekapi-otel includes the 200 warm-up events, also spooled)"
    t += f"\ntarget (ours loses nothing, growth <= peekapi's): {'MET' if ok else 'NOT MET'}"
    return t, summary


# --- main -------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the short run (the suite's smoke size)")
    ap.add_argument("--json", default=str(HERE / "results" / "latest.json"), help="output file")
    ap.add_argument(
        "--only", default="overhead,one_process,throughput,memory", help="sections to run"
    )
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument(
        "--cut",
        action="store_true",
        help="also run OpenTelemetry alone with its default ASGI spans (section 4)",
    )
    args = ap.parse_args()

    if importlib.util.find_spec("peekapi") is None:
        print("The comparison needs the PeekAPI SDK: pip install peekapi==0.1.0", file=sys.stderr)
        return 2
    cfg = QUICK if args.quick else FULL
    sections = set(args.only.split(","))
    frameworks = [f for f in args.frameworks.split(",") if f]
    out_path = Path(args.json)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    logdir = Path(tempfile.mkdtemp(prefix="peekapi-bench-logs-"))

    started = time.monotonic()
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "method": (
            "CPU = time.process_time() of the measuring process (all threads), from round "
            "start until the ingest acknowledged the round's events. Variants interleaved "
            "in short rounds with rotating order, paired per round; median and IQR of "
            "per-round values."
        ),
        "logs": str(logdir),
    }
    m = result["machine"]
    print(
        f"machine: {m['cpu_count']} CPUs, {m['platform']}, Python {sys.version.split()[0]}, "
        f"load {m['loadavg_at_start']}; mode {result['mode']}",
        flush=True,
    )
    print("packages: " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()), flush=True)
    tables: list[str] = []
    ingest = Ingest()
    try:
        if "overhead" in sections:
            print("1/4. per-request overhead ...", flush=True)
            data = overhead(ingest, cfg["overhead"], frameworks, logdir, args.cut)
            overhead_text, data["summary"] = overhead_tables(data)
            result["overhead"] = data
            tables += overhead_text
            print("\n\n".join(overhead_text), flush=True)
        if "one_process" in sections:
            print("1c. each way in and its baselines in one process ...", flush=True)
            data = one_process(ingest, cfg["one_process"], frameworks, logdir)
            t, data["summary"] = one_process_table(data)
            result["one_process"] = data
            tables.append(t)
            print(t, flush=True)
        if "throughput" in sections:
            print("2. export throughput ...", flush=True)
            data = throughput(ingest, cfg["throughput"], logdir)
            t, data["summary"] = throughput_table(data)
            result["throughput"] = data
            tables.append(t)
        if "memory" in sections:
            print("3. memory and loss under pressure ...", flush=True)
            data = memory(cfg["memory"], logdir)
            t, data["summary"] = memory_table(data)
            result["memory"] = data
            tables.append(t)
    finally:
        ingest.stop()
        out_path.write_text(json.dumps(result, indent=1, default=str))
    result["seconds"] = round(time.monotonic() - started, 1)
    out_path.write_text(json.dumps(result, indent=1, default=str))
    print()
    for t in tables:
        print(t)
        print()
    print(f"total {result['seconds']}s; JSON (with raw samples): {out_path}; worker logs: {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
