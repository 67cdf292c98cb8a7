"""Redis gone (it is the broker, the shared cache and the metrics' counter in production):
the API still takes orders — the rate limit is skipped rather than refusing every call — and
a send still goes out, its metrics count lost with a warning."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings

from orders import api
from orders.dispatch import dispatch_one
from orders.models import Order
from panel.celery import app as celery_app
from panel.models import ApiKey
from providers import metrics as upstream_metrics
from tests.conftest import make_service
from tests.test_end_to_end import _switch_broker

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis_gone(settings: Any) -> Iterator[None]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    saved = (celery_app.conf.broker_url, dict(celery_app.conf.broker_transport_options or {}))
    _switch_broker(dead, django_settings.REDIS_BROKER_TRANSPORT_OPTIONS)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": dead}}
    settings.REDIS_URL = dead
    upstream_metrics._redis.cache_clear()
    api._redis.cache_clear()  # the rate limit's client, made once per process from CACHES
    yield
    _switch_broker(*saved)
    upstream_metrics._redis.cache_clear()
    api._redis.cache_clear()


def test_orders_are_taken_and_sent_while_redis_is_gone(client, catalog, alice, redis_gone,
                                                       caplog):
    _, raw = ApiKey.issue(alice)
    service = make_service(catalog, "Default")

    reply = client.post("/api/v2", {"key": raw, "action": "add", "service": service.pk,
                                    "link": "https://instagram.com/p/noredis",
                                    "quantity": service.min_quantity})

    order_id = reply.json()["order"]
    assert dispatch_one(order_id)  # the sweep's (or a kick's) work, once a worker runs it
    assert Order.objects.get(pk=order_id).status == Order.Status.PENDING
    messages = [r.getMessage() for r in caplog.records]
    assert any("rate limit not counted" in m for m in messages)
    assert any("upstream call not counted" in m for m in messages)
