"""How many calls went to each upstream, how they ended and how long they took, counted for
the panel's /metrics (orders/metrics.py).

The calls are made by every process (gunicorn workers, Celery's pool, beat's catalog sync), in
several containers, so an in-process counter would show one process's share. With REDIS_URL
set they are counted in one Redis hash that all of them share: one pipelined round trip per
call, next to an HTTP request to an upstream that takes a hundred times longer. Without Redis
(the demo's filesystem broker) each process counts its own.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings

from providers.client import UpstreamCall

log = logging.getLogger(__name__)

KEY = "panel:metrics:upstream_calls"
# Upper bounds of the latency buckets, in seconds; the last catches the rest.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)
SEP = "\x1f"  # between the labels in a hash field: cannot occur in a name or an action

_local: dict[str, float] = defaultdict(float)
_local_lock = threading.Lock()


@dataclass
class CallStats:
    count: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))  # not cumulative


@cache
def _redis() -> Any:
    import redis  # celery[redis] brings it

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5,
                                socket_connect_timeout=0.5)


def _bucket(seconds: float) -> str:
    return str(next(i for i, bound in enumerate(BUCKETS) if seconds <= bound))


def record_call(call: UpstreamCall) -> None:
    """CALL_OBSERVERS entry: count one exchange. Never raises into the call."""
    labels = SEP.join((call.provider, call.action, call.outcome))
    fields = {f"n{SEP}{labels}": 1.0, f"s{SEP}{labels}": call.seconds,
              f"b{SEP}{labels}{SEP}{_bucket(call.seconds)}": 1.0}
    if not settings.REDIS_URL:
        with _local_lock:
            for name, value in fields.items():
                _local[name] += value
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for name, value in fields.items():
            pipe.hincrbyfloat(KEY, name, value)
        pipe.execute()
    except Exception as exc:  # the metrics lose one call; the call itself is not affected
        log.warning("upstream call not counted: %s", exc)


def upstream_calls() -> dict[tuple[str, str, str], CallStats]:
    """Every (provider, action, outcome) counted so far, across processes (with Redis)."""
    if settings.REDIS_URL:
        raw = {k.decode(): float(v) for k, v in _redis().hgetall(KEY).items()}
    else:
        with _local_lock:
            raw = dict(_local)
    stats: dict[tuple[str, str, str], CallStats] = defaultdict(CallStats)
    for name, value in raw.items():
        kind, *rest = name.split(SEP)
        if kind == "b" and len(rest) == 4:
            stats[(rest[0], rest[1], rest[2])].buckets[int(rest[3])] += int(value)
        elif kind in ("n", "s") and len(rest) == 3:
            entry = stats[(rest[0], rest[1], rest[2])]
            if kind == "n":
                entry.count += int(value)
            else:
                entry.seconds += value
    return dict(stats)


def reset() -> None:
    """Forget every count (tests)."""
    with _local_lock:
        _local.clear()
    if settings.REDIS_URL:
        _redis().delete(KEY)
