"""One structured log line per API call and per upstream call, and a request id that follows
an order from the API call that placed it into the worker's send."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from orders import tasks
from orders.models import Order
from panel.logs import JsonFormatter
from panel.models import ApiKey
from tests.conftest import make_service

pytestmark = pytest.mark.django_db


def _add(client: Any, key: str, service: Any, **headers: str) -> Any:
    return client.post("/api/v2", {"key": key, "action": "add", "service": service.pk,
                                   "link": "https://instagram.com/p/ids",
                                   "quantity": service.min_quantity}, **headers)


def _records(caplog: Any, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger]


def test_the_request_id_follows_the_order_from_the_api_call_into_the_workers_send(
        client, catalog, alice, caplog):
    _, raw = ApiKey.issue(alice)
    service = make_service(catalog, "Default")
    caplog.set_level(logging.INFO)

    response = _add(client, raw, service)
    order_id = response.json()["order"]
    rid = response["X-Request-ID"]
    tasks.dispatch_order(order_id)  # what the worker runs for the kick

    order = Order.objects.get(pk=order_id)
    assert order.request_id == rid and len(rid) == 32
    (api_line,) = _records(caplog, "orders.api")
    assert api_line.request_id == rid and api_line.order == order_id
    assert f"request_id={rid}" in api_line.getMessage() and f"order={order_id}" in \
        api_line.getMessage()
    (send,) = [r for r in _records(caplog, "providers.client")
               if getattr(r, "upstream_action", "") == "add"]
    assert send.request_id == rid and send.order == order_id
    assert f"order={order_id} request_id={rid}" in send.getMessage()
    assert order.status == Order.Status.PENDING


def test_a_clients_own_request_id_is_kept_and_a_bad_one_replaced(client, catalog, alice):
    _, raw = ApiKey.issue(alice)
    service = make_service(catalog, "Default", one_order_per_link=False)

    mine = _add(client, raw, service, HTTP_X_REQUEST_ID="client-7f3a.42")
    odd = _add(client, raw, service, HTTP_X_REQUEST_ID="two words\nand a newline")

    assert mine["X-Request-ID"] == "client-7f3a.42"
    assert Order.objects.get(pk=mine.json()["order"]).request_id == "client-7f3a.42"
    assert odd["X-Request-ID"] != "two words\nand a newline" and len(odd["X-Request-ID"]) == 32


def test_every_api_call_logs_one_line_refusals_included(client, alice, caplog):
    _, raw = ApiKey.issue(alice)
    caplog.set_level(logging.INFO, logger="orders.api")

    client.post("/api/v2", {"key": raw, "action": "balance"})
    client.post("/api/v2", {"key": "wrong", "action": "balance"})

    lines = _records(caplog, "orders.api")
    assert [(r.api_action, r.outcome) for r in lines] == [
        ("balance", "ok"), ("balance", "Invalid API key")]
    assert all(r.duration_ms >= 0 and r.request_id for r in lines)


def test_a_json_log_line_carries_the_fields(client, alice, caplog):
    _, raw = ApiKey.issue(alice)
    caplog.set_level(logging.INFO, logger="orders.api")
    client.post("/api/v2", {"key": raw, "action": "balance"})

    (record,) = _records(caplog, "orders.api")
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "orders.api" and line["level"] == "INFO"
    assert line["api_action"] == "balance" and line["customer"] == alice.pk
    assert line["request_id"] == record.request_id
    assert raw not in json.dumps(line)
