"""The latency sketch the rollups keep per period: log buckets (as in DDSketch) per status class.

Bucket ``i`` holds values in ``(MIN_MS * GAMMA**(i-1), MIN_MS * GAMMA**i]`` and answers
with a value within ``RELATIVE_ERROR`` of every value it holds, so any percentile read
from it is within 1 % of the true one. Values at or below ``MIN_MS`` share bucket 0 and
read as 0.

Stored as JSON, one entry per status class: a dense run ``[first, n_first, n_first+1, ...]``
when most of its buckets are used (a busy period: merged into another run with one slice
assignment instead of a dictionary update per bucket), else sparse ``{"bucket": count}``
(a quiet minute: a few values far apart). The class lets a status filter read its own
latencies; a period written by the version before classes (``{"bucket": count}`` for all
of them) reads as class ``"0"``, unknown.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Sequence
from typing import Any, Final

RELATIVE_ERROR: Final = 0.01
GAMMA: Final = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA: Final = math.log(GAMMA)
MIN_MS: Final = 0.01
CLASS_KEY: Final = 10_000
"""A counted value's key in one batch: status class * CLASS_KEY + bucket (bucket 9999 is
0.01 ms * GAMMA**9999, far above any latency)."""
UNKNOWN_CLASS: Final = "0"

Sketch = dict[str, list[int]]
"""Status class ("1".."5", "0" for unknown) -> run: the first bucket, then its counts."""


def bucket(value_ms: float) -> int:
    if value_ms <= MIN_MS:
        return 0
    return min(CLASS_KEY - 1, max(1, math.ceil(math.log(value_ms / MIN_MS) / _LOG_GAMMA)))


def bucket_value(index: int) -> float:
    if index <= 0:
        return 0.0
    return MIN_MS * 2 * GAMMA**index / (GAMMA + 1)


def parse(text: str) -> Sketch:
    out: Sketch = {}
    merge_stored(out, text)
    return out


def dump(sketch: Sketch) -> str:
    out: dict[str, Any] = {}
    for cls, run in sketch.items():
        used = len(run) - 1 - run.count(0) + (run[0] == 0)
        if used * 4 < len(run) - 1:
            out[cls] = {str(run[0] + i): n for i, n in enumerate(run[1:]) if n}
        else:
            out[cls] = run
    return json.dumps(out, separators=(",", ":"))


def _widen(run: list[int], first: int, last: int) -> None:
    if first < run[0]:
        run[1:1] = [0] * (run[0] - first)
        run[0] = first
    end = last - run[0] + 2
    if end > len(run):
        run.extend([0] * (end - len(run)))


def merge_stored(into: Sketch, text: str) -> None:
    """Merge a stored sketch (either form, or the layout without classes) into ``into``."""
    raw = json.loads(text)
    if raw and not all(isinstance(v, (list, dict)) for v in raw.values()):
        raw = {UNKNOWN_CLASS: raw}
    for cls, value in raw.items():
        run = into.get(cls)
        if isinstance(value, list):
            if run is None:
                into[cls] = value
            else:
                _add_run(run, value)
        elif value:
            keys = [int(k) for k in value]
            first, last = min(keys), max(keys)
            if run is None:
                run = into[cls] = [first] + [0] * (last - first + 1)
            else:
                _widen(run, first, last)
            shift = 1 - run[0]
            for index, n in zip(keys, value.values(), strict=True):
                run[index + shift] += n


def _add_run(into: list[int], other: list[int]) -> None:
    if other[0] < into[0]:
        into[1:1] = [0] * (into[0] - other[0])
        into[0] = other[0]
    first = other[0] - into[0] + 1
    stop = first + len(other) - 1
    if stop > len(into):
        into.extend([0] * (stop - len(into)))
    into[first:stop] = map(operator.add, into[first:stop], other[1:])


def merge_sketch(into: Sketch, other: Sketch) -> None:
    for cls, run in other.items():
        mine = into.get(cls)
        if mine is None:
            into[cls] = run.copy()
        else:
            _add_run(mine, run)


def add_counts(into: Sketch, counts: dict[int, int]) -> None:
    """Add one batch's ``{class * CLASS_KEY + bucket: count}`` to a sketch."""
    for key, count in counts.items():
        cls, index = divmod(key, CLASS_KEY)
        name = str(cls)
        run = into.get(name)
        if run is None:
            into[name] = [index, count]
            continue
        at = index - run[0] + 1
        if at < 1:
            run[1:1] = [0] * (1 - at)
            run[0] = index
            at = 1
        elif at >= len(run):
            run.extend([0] * (at - len(run) + 1))
        run[at] += count


def latencies(sketch: Sketch, status: int | None = None) -> list[int] | None:
    """The run of one status class, or of all of them merged; None when a class is asked
    for and part of the sketch has none (its class is unknown)."""
    if status is not None:
        if UNKNOWN_CLASS in sketch:
            return None
        return sketch.get(str(status), [0])
    runs = iter(sketch.values())
    merged = next(runs, [0]).copy()
    for run in runs:
        _add_run(merged, run)
    return merged


def count(run: list[int]) -> int:
    return sum(run[1:])


def quantiles(run: list[int], total: int, percents: Sequence[int]) -> list[float | None]:
    """The nearest-rank percentiles of the values counted in ``run``, in one pass."""
    if total <= 0 or len(run) < 2:
        return [None] * len(percents)
    ranks = sorted((max(1, (p * total + 99) // 100), i) for i, p in enumerate(percents))
    out: list[float | None] = [None] * len(percents)
    seen, todo = 0, 0
    for offset, n in enumerate(run[1:]):
        seen += n
        while todo < len(ranks) and seen >= ranks[todo][0]:
            out[ranks[todo][1]] = bucket_value(run[0] + offset)
            todo += 1
        if todo == len(ranks):
            return out
    top = bucket_value(run[0] + len(run) - 2)
    return [top if v is None else v for v in out]


def mean(run: list[int]) -> float | None:
    """The mean of the values counted in ``run`` (within 1 %, like each value)."""
    total = count(run)
    if not total:
        return None
    return sum(bucket_value(run[0] + i) * n for i, n in enumerate(run[1:])) / total
