"""The OpenAPI description of API v2 is served, valid, and true: every reply the endpoint gives,
for every action and shape, validates against it, and replies that break the contract do not."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from django.utils import timezone

from orders import api as api_v2
from orders import dispatch, polling
from orders.models import Order, Refill
from orders.params import SERVICE_TYPE_SPECS, SERVICE_TYPES
from orders.placing import place_order
from panel.models import ApiKey
from tests.conftest import make_service, valid_add_params

pytestmark = pytest.mark.django_db

SPEC_URL = "/api/v2/openapi.json"


@pytest.fixture
def spec(client) -> dict[str, Any]:
    response = client.get(SPEC_URL)
    assert response.status_code == 200
    return response.json()


def validator(spec: dict[str, Any], component: str) -> Any:
    """A JSON Schema validator for one component (OpenAPI 3.0 schemas are draft 4 in shape)."""
    return jsonschema_rs.Draft4Validator(
        {"allOf": [{"$ref": f"#/components/schemas/{component}"}],
         "components": spec["components"]})


def assert_matches(spec: dict[str, Any], component: str, reply: Any, what: str) -> None:
    errors = [e.message for e in validator(spec, component).iter_errors(reply)]
    assert not errors, f"{what}: {reply!r} does not match {component}: {errors}"
    # ... and the operation's reply (oneOf every shape) takes it as exactly that one shape.
    errors = [e.message for e in validator(spec, "Reply").iter_errors(reply)]
    assert not errors, f"{what}: {reply!r} does not match Reply: {errors}"


def as_form(params: dict[str, Any]) -> dict[str, str]:
    """API v2 parameters as a form-encoding client sends them: text, lists one per line."""
    return {name: "\n".join(map(str, value)) if isinstance(value, list) else str(value)
            for name, value in params.items()}


# --- the description itself ----------------------------------------------------------------


def test_the_description_is_served_as_json_and_is_valid_openapi(client):
    response = client.get(SPEC_URL)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = response.json()
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.0 meta-schema
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "http://testserver"}]
    assert set(document["paths"]) == {"/api/v2", "/api/v2/"}


def test_the_description_documents_every_action_type_and_transport(spec):
    schemas = spec["components"]["schemas"]
    request = schemas["Request"]
    assert request["required"] == ["key", "action"]
    assert request["properties"]["action"]["enum"] == [
        "services", "add", "status", "refill", "refill_status", "cancel", "balance"]
    assert all(p["type"] == "string" for p in request["properties"].values())
    assert schemas["Service"]["properties"]["type"]["enum"] == list(SERVICE_TYPES)
    for path in ("/api/v2", "/api/v2/"):
        post, get = spec["paths"][path]["post"], spec["paths"][path]["get"]
        assert set(post["requestBody"]["content"]) == {
            "application/x-www-form-urlencoded", "application/json"}
        assert {p["name"] for p in get["parameters"]} == set(request["properties"])
        assert {p["name"] for p in get["parameters"] if p["required"]} == {"key", "action"}


def test_every_field_of_every_type_is_described_with_the_types_that_take_it(spec):
    properties = spec["components"]["schemas"]["Request"]["properties"]
    for type_spec in SERVICE_TYPE_SPECS:
        for type_field in type_spec.fields:
            description = properties[type_field.name]["description"]
            everyone = re.match(r"add: every type(?: but ([^:]+))?:", description)
            assert type_spec.name in description or (
                everyone and type_spec.name not in (everyone.group(1) or "")), \
                (type_spec.name, type_field.name)
            assert type_field.help in description
    assert "600" in properties["delay"]["description"]
    assert properties["link"]["description"].startswith("add: every type but Subscriptions:")


def test_the_description_and_the_code_agree_on_actions_and_statuses(spec):
    schemas = spec["components"]["schemas"]
    assert set(schemas["Request"]["properties"]["action"]["enum"]) == set(api_v2.ACTIONS)
    assert set(Order.CUSTOMER_STATUS.values()) == set(
        schemas["OrderStatus"]["properties"]["status"]["enum"])
    assert set(Refill.CUSTOMER_STATUS.values()) == set(
        schemas["RefillStatus"]["properties"]["status"]["enum"])


def test_only_get_and_head_read_the_description(client):
    assert client.post(SPEC_URL).status_code == 405


# --- real replies validate -------------------------------------------------------------------


@dataclass
class Api:
    """A customer's API v2 session over the Django test client, in any transport."""

    client: Any
    key: str
    replies: list[tuple[str, str, Any]] = field(default_factory=list)

    def call(self, action: str, component: str, transport: str = "form", path: str = "/api/v2",
             **params: Any) -> Any:
        data = {"key": self.key, "action": action, **as_form(params)}
        if transport == "json":
            response = self.client.post(path, json.dumps(data), content_type="application/json")
        elif transport == "get":
            response = self.client.get(path, data)
        else:
            response = self.client.post(path, data)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        reply = response.json()
        self.replies.append((f"{transport} {path} {action} {params}", component, reply))
        return reply


def _finish(order_id: int) -> None:
    """Send the order to the sandbox and poll it once (the sandbox finishes it then)."""
    assert dispatch.dispatch_one(order_id)
    Order.objects.filter(pk=order_id).update(next_check_at=timezone.now())
    polling.poll_orders()


@pytest.fixture
def api(client, alice) -> Api:
    _, raw = ApiKey.issue(alice)
    return Api(client, raw)


def test_every_action_and_reply_shape_matches_the_description(spec, api, catalog, sandbox, bob):
    # services: one of every type, so every type name is in the list.
    by_type = {kind: make_service(catalog, kind) for kind in SERVICE_TYPES}
    refillable = make_service(catalog, "Default", upstream={"refill": True}, refill=True)
    cancelable = make_service(catalog, "Default", upstream={"cancel": True}, cancel=True)
    listed = api.call("services", "ServiceList")
    assert {s["type"] for s in listed} == set(SERVICE_TYPES)

    # add: one order of every type, then a refused one.
    for item in listed:
        if item["service"] in {s.pk for s in by_type.values()}:
            api.call("add", "OrderCreated", service=item["service"], **valid_add_params(item))
    api.call("add", "Error", service=by_type["Default"].pk, link="not a link", quantity=100)

    # Two finished refillable orders and one the upstream keeps in progress.
    done = [api.call("add", "OrderCreated", service=refillable.pk,
                     link=f"https://x.com/done{i}", quantity=refillable.min_quantity)["order"]
            for i in range(2)]
    for order_id in done:
        _finish(order_id)
    sandbox.set_speed(600)
    running = api.call("add", "OrderCreated", service=cancelable.pk, link="https://x.com/run",
                       quantity=cancelable.min_quantity)["order"]
    assert dispatch.dispatch_one(running)
    bobs = place_order(bob, cancelable.pk, {"link": "https://x.com/bob",
                                            "quantity": cancelable.min_quantity}).pk

    status = api.call("status", "OrderStatus", order=done[0])
    assert status["status"] == "Completed"
    api.call("status", "OrderStatus", order=running)
    api.call("status", "Error", order=bobs)
    multi = api.call("status", "MultiStatus", orders=f"{done[0]},{running},{bobs},abc")
    assert multi[str(bobs)] == multi["abc"] == {"error": "Incorrect order ID"}

    refill = api.call("refill", "RefillCreated", order=done[0])
    api.call("refill", "Error", order=running)
    refills = api.call("refill", "RefillList", orders=f"{done[1]},{done[0]},{bobs},x")
    assert isinstance(refills[0]["refill"], int)
    assert [r["order"] for r in refills] == [done[1], done[0], bobs, "x"]

    api.call("refill_status", "RefillStatus", refill=refill["refill"])
    api.call("refill_status", "Error", refill="999999999")
    api.call("refill_status", "RefillStatusList",
             refills=f"{refill['refill']},{refills[0]['refill']},999999999,y")

    cancels = api.call("cancel", "CancelList", orders=f"{running},{done[0]},{bobs}")
    assert [c["cancel"] for c in cancels] == [
        1, {"error": "Order not eligible for cancel"}, {"error": "Incorrect order ID"}]

    api.call("balance", "Balance")
    api.call("nothing", "Error")
    api.call("status", "Error")
    api.call("status", "Error", orders="")
    api.call("cancel", "Error", orders=",".join(["1"] * 101))

    # The same calls over JSON, GET and the trailing slash.
    for transport in ("json", "get"):
        for path in ("/api/v2", "/api/v2/"):
            api.call("balance", "Balance", transport, path)
            api.call("status", "MultiStatus", transport, path, orders=f"{done[0]},nope")
            api.call("refill_status", "RefillStatus", transport, path, refill=refill["refill"])

    for what, component, reply in api.replies:
        assert_matches(spec, component, reply, what)


def test_a_wrong_key_is_answered_with_the_error_shape(spec, client):
    for data in ({}, {"action": "balance"}, {"key": "x" * 64, "action": "balance"}):
        assert_matches(spec, "Error", client.post("/api/v2", data).json(), str(data))


# --- replies that break the contract do not validate ---------------------------------------

_STATUS = {"charge": "0.27819", "start_count": "3572", "status": "Partial", "remains": "157",
           "currency": "USD"}


@pytest.mark.parametrize("reply", [
    {"order": "23501"},  # an order ID as a string
    {"order": 0},
    {"order": 23501, "extra": 1},
    {key: value for key, value in _STATUS.items() if key != "currency"},
    {**_STATUS, "charge": 0.27819},  # money as a JSON number
    {**_STATUS, "status": "Cancelled"},  # the upstream spelling is not ours to send
    {**_STATUS, "remains": "Unknown"},
    {"1": {**_STATUS, "status": "Refunded"}},
    {"1": _STATUS, "2": {"error": 1}},
    {},
    {"refill": 1},  # a single refill's ID is a string
    [{"order": 1, "refill": "1"}],  # batch items use integers
    [{"order": 1, "refill": {"error": "Incorrect order ID"}, "cancel": 1}],
    [{"refill": 1, "status": "Done"}],
    [{"order": 2, "cancel": True}],
    [{"order": 2, "cancel": 0}],
    {"status": "Partial"},  # not a refill status
    {"balance": 100.84292, "currency": "USD"},
    {"balance": "100.84292"},
    {"error": ""},
    {"error": "Incorrect request", "code": 1},
    [{"service": 1, "name": "x", "type": "Likes", "category": "c", "rate": "0.90", "min": "1",
      "max": "10", "refill": False, "cancel": False}],
    [{"service": "1", "name": "x", "type": "Default", "category": "c", "rate": "0.90",
      "min": "1", "max": "10", "refill": False, "cancel": False}],
    [{"service": 1, "name": "x", "type": "Default", "category": "c", "rate": "0.90",
      "min": 1, "max": "10", "refill": False, "cancel": False}],
    "Incorrect request",
    None,
])
def test_a_reply_that_breaks_the_contract_does_not_validate(spec, reply):
    assert not validator(spec, "Reply").is_valid(reply)


@pytest.mark.parametrize(("component", "reply"), [
    ("OrderStatus", _STATUS),
    ("MultiStatus", {"1": _STATUS, "10": {"error": "Incorrect order ID"}}),
    ("RefillCreated", {"refill": "1"}),
    ("RefillList", [{"order": 1, "refill": 1},
                    {"order": 3, "refill": {"error": "Incorrect order ID"}}]),
    ("RefillStatus", {"status": "Completed"}),
    ("RefillStatusList", [{"refill": 1, "status": "Completed"},
                          {"refill": 3, "status": {"error": "Refill not found"}}]),
    ("CancelList", [{"order": 9, "cancel": {"error": "Incorrect order ID"}},
                    {"order": 2, "cancel": 1}]),
    ("Balance", {"balance": "100.84292", "currency": "USD"}),
    ("OrderCreated", {"order": 23501}),
    ("ServiceList", [{"service": 1, "name": "Followers", "type": "Default",
                      "category": "First Category", "rate": "0.90", "min": "50",
                      "max": "10000", "refill": True, "cancel": True}]),
])
def test_the_seeds_examples_validate(spec, component, reply):
    assert_matches(spec, component, reply, "seed example")


# --- regressions found while describing the API ---------------------------------------------


@pytest.mark.parametrize("params", [
    {"action": "status", "order": "²"},
    {"action": "status", "orders": "²,1"},
    {"action": "refill_status", "refill": "²"},
    {"action": "refill_status", "refills": "²,1"},
])
def test_a_non_ascii_digit_is_an_incorrect_id_not_an_internal_error(spec, api, caplog, params):
    # "²".isdigit() is true but int("²") raises: that was logged as an unexpected failure and
    # turned a batch into one "Incorrect request" instead of an error per item.
    with caplog.at_level(logging.ERROR, logger="orders.api"):
        reply = api.client.post("/api/v2", {"key": api.key, **params}).json()

    assert not caplog.records
    assert reply != {"error": "Incorrect request"}
    assert validator(spec, "Reply").is_valid(reply)


@pytest.mark.parametrize(("data", "content_type"), [
    (b"[" * 100_000, "application/json"),
    (b"--x\r\nContent-Disposition: form-data; name=key\r\n\r\nabc", "multipart/form-data"),
])
def test_an_unreadable_body_is_an_incorrect_request_not_an_internal_error(
        client, caplog, data, content_type):
    with caplog.at_level(logging.ERROR, logger="orders.api"):
        reply = client.post("/api/v2", data, content_type=content_type).json()

    assert reply == {"error": "Incorrect request"}
    assert not caplog.records


@pytest.mark.parametrize("params", [
    {"action": "add", "service": "²"},
    {"action": "refill", "order": "²"},
    {"action": "refill", "orders": "²"},
    {"action": "cancel", "orders": "²"},
])
def test_a_non_ascii_digit_in_add_refill_or_cancel_is_no_internal_error(api, caplog, params):
    with caplog.at_level(logging.ERROR, logger="orders.api"):
        reply = api.client.post("/api/v2", {"key": api.key, **params}).json()

    assert not caplog.records
    assert reply != {"error": "Incorrect request"}
