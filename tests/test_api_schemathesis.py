"""Schemathesis fuzzes API v2 from its own OpenAPI description: no input gives a 5xx, a reply
outside the description, or an internal error that the view hides behind "Incorrect request".

The WSGI app is called in this thread, so it shares the test's database transaction. Most cases
get a valid key (and often valid IDs or a whole valid `add`) so they reach past authentication;
the rest stay as generated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from orders import dispatch, polling, refills
from orders.models import Order
from orders.params import SERVICE_TYPES
from orders.placing import place_order
from panel.models import ApiKey
from tests.conftest import make_service, valid_add_params

SPEC_URL = "/api/v2/openapi.json"
WSGI_HOST = "localhost"  # the Host schemathesis sends to a WSGI app
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
ID_PARAMETERS = ("service", "order", "orders", "refill", "refills")


@dataclass
class World:
    key: str
    ids: dict[str, list[str]]  # valid values for each ID parameter
    services: list[dict[str, Any]]  # as the `services` action lists them


class ApiFailures(logging.Handler):
    """Errors orders/api.py logs: the view answers them as "Incorrect request", so only the log
    tells an internal failure from a client error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def api_failures() -> Iterator[ApiFailures]:
    handler, logger = ApiFailures(), logging.getLogger("orders.api")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def wsgi_app(settings) -> Iterator[Any]:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, WSGI_HOST]
    settings.API_RATE_LIMIT_PER_KEY = settings.API_RATE_LIMIT_PER_IP = 0  # hundreds of calls
    # As Django's test client does: the handler must not close the connection that holds the
    # test's transaction at the end of every request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        # A new handler, so its middleware reads the settings of this test.
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(catalog, alice, bob, sandbox) -> World:
    """A catalog of every type, alice's key, her finished, running and refilled orders."""
    services = [make_service(catalog, kind) for kind in SERVICE_TYPES]
    refillable = make_service(catalog, "Default", upstream={"refill": True}, refill=True)
    cancelable = make_service(catalog, "Default", upstream={"cancel": True}, cancel=True)
    done = [place_order(alice, refillable.pk, {"link": f"https://x.com/done{i}",
                                                "quantity": refillable.min_quantity})
            for i in range(3)]
    for order in done:
        assert dispatch.dispatch_one(order.pk)
    Order.objects.filter(pk__in=[o.pk for o in done]).update(next_check_at=timezone.now())
    polling.poll_orders()  # the sandbox finishes them at their first status query
    refill = refills.request_refill(alice, done[0].pk)
    sandbox.set_speed(600)
    running = place_order(alice, cancelable.pk, {"link": "https://x.com/running",
                                                 "quantity": cancelable.min_quantity})
    assert dispatch.dispatch_one(running.pk)
    bobs = place_order(bob, cancelable.pk, {"link": "https://x.com/bob",
                                            "quantity": cancelable.min_quantity})
    _, raw = ApiKey.issue(alice)

    orders = [str(o.pk) for o in [*done, running, bobs]]
    ids = {
        "service": [str(s.pk) for s in [*services, refillable, cancelable]],
        "order": orders,
        "orders": [*orders, ",".join(orders), f"{orders[0]},x,{orders[-1]}"],
        "refill": [str(refill.pk)],
        "refills": [str(refill.pk), f"{refill.pk},999999999"],
    }
    listed = [{"service": s.pk, "type": s.type, "min": str(s.min_quantity)}
              for s in [*services, refillable, cancelable]]
    return World(raw, ids, listed)


def _load_schema() -> Any:
    """The description as a client gets it, from the app (serving it needs no database).

    Loaded at import, not from a fixture: schemathesis.pytest.from_fixture() fails on pytest 9.2
    (it sets `Function._nodeid`, which pytest no longer has).
    """
    with override_settings(ALLOWED_HOSTS=[WSGI_HOST]):
        return schemathesis.openapi.from_wsgi(SPEC_URL, get_wsgi_application())


schema = _load_schema()


def steer(params: Any, world: World, data: st.DataObject) -> None:
    """Give most cases a valid key, and some valid IDs or a whole valid `add`."""
    if not isinstance(params, dict):
        return  # negative cases may send a body that is no object at all
    if data.draw(st.integers(0, 3), label="with key"):
        params["key"] = world.key
    if data.draw(st.booleans(), label="valid ids"):
        for name in ID_PARAMETERS:
            if name in params:
                params[name] = data.draw(st.sampled_from(world.ids[name]), label=name)
    if params.get("action") == "add" and data.draw(st.booleans(), label="valid add"):
        # Only the type's own parameters: a stray generated `runs` or `expiry` refuses the order.
        service = data.draw(st.sampled_from(world.services), label="service")
        kept = {name: params[name] for name in ("key", "action") if name in params}
        params.clear()
        params.update(kept, service=str(service["service"]))
        for name, value in valid_add_params(service).items():
            params[name] = "\n".join(map(str, value)) if isinstance(value, list) else str(value)


@pytest.mark.django_db
@schema.parametrize()
@schema.given(data=st.data())
@hypothesis.settings(max_examples=100, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_v2_keeps_its_description(case, data, wsgi_app, world, api_failures):
    steer(case.query if case.method == "GET" else case.body, world, data)
    api_failures.records.clear()

    case.call_and_validate(checks=CHECKS, app=wsgi_app)

    assert not api_failures.records, [r.getMessage() for r in api_failures.records]
