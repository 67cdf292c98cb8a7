"""The sandbox provider: API v2 replies, money, progress, faults, control endpoint and CLI.

Everything talks to a real in-process server over HTTP; no database is needed.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from providers.sandbox import FAULT_NAMES, SandboxServer
from providers.sandbox.catalog import SERVICE_TYPES, synthetic_catalog

ROOT = Path(__file__).resolve().parent.parent
LINK = "https://www.instagram.com/p/Cx1AbCdEf/"


@pytest.fixture
def srv() -> Iterator[SandboxServer]:
    # No random Partials here, so charges and balances are exact; one test turns them on.
    with SandboxServer(port=0, step_seconds=0, partial_every=0, rejected_every=0) as server:
        yield server


def call(srv: SandboxServer, timeout: float = 5, **params: Any) -> Any:
    params.setdefault("key", srv.key)
    response = requests.post(srv.url, data=params, timeout=timeout)
    assert response.status_code == 200
    return response.json()


def control(srv: SandboxServer, method: str, path: str, body: Any = None) -> Any:
    response = requests.request(method, f"{srv.control_url}/{path}", json=body, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def service_of(srv: SandboxServer, kind: str, **flags: bool) -> dict[str, Any]:
    return next(s for s in call(srv, action="services")
                if s["type"] == kind and all(s[k] == v for k, v in flags.items()))


def money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)


def balance(srv: SandboxServer, key: str | None = None) -> Decimal:
    reply = call(srv, action="balance", key=key or srv.key)
    assert reply["currency"] == "USD"
    return Decimal(reply["balance"])


def lines(n: int, prefix: str) -> str:
    # Mixed separators and a blank line: only non-empty lines count.
    return "\r\n".join(f"{prefix}{i}" for i in range(n)) + "\n\n"


# --- catalog ----------------------------------------------------------------------------


def test_catalog_covers_all_14_types_with_about_40_services(srv: SandboxServer) -> None:
    services = call(srv, action="services")
    assert 35 <= len(services) <= 60
    assert {s["type"] for s in services} == set(SERVICE_TYPES)
    assert len(SERVICE_TYPES) == 14
    first = services[0]
    assert isinstance(first["service"], int)
    assert all(isinstance(first[k], str) for k in ("name", "type", "category", "rate", "min",
                                                    "max", "description"))
    assert all(isinstance(first[k], bool) for k in ("refill", "cancel", "dripfeed"))
    assert any(s["dripfeed"] for s in services) and any(s["refill"] for s in services)
    assert len({s["category"] for s in services}) >= 15


def test_synthetic_catalog_serves_10000_services_fast() -> None:
    with SandboxServer(catalog_size=10000) as server:
        started = time.perf_counter()
        services = call(server, action="services")
        assert time.perf_counter() - started < 1.0
    assert len(services) == 10000
    assert {s["service"] for s in services} == set(range(1, 10001))
    assert {s["type"] for s in services} == set(SERVICE_TYPES)
    assert synthetic_catalog(50) == synthetic_catalog(50)  # deterministic


# --- add for every type -----------------------------------------------------------------


def _add_params(service: dict[str, Any]) -> tuple[dict[str, Any], Decimal]:
    """Valid `add` parameters for a service and the charge they should cost."""
    kind, rate, low = service["type"], Decimal(service["rate"]), int(service["min"])
    per_k = money(rate * low / 1000)
    quantity = {"link": LINK, "quantity": low}
    table: dict[str, tuple[dict[str, Any], Decimal]] = {
        "Default": (quantity, per_k),
        "Package": ({"link": LINK}, money(rate)),
        "Custom Comments": ({"link": LINK, "comments": lines(low, "nice ")}, per_k),
        "Custom Comments Package": ({"link": LINK, "comments": lines(3, "wow ")}, money(rate)),
        "Mentions with Hashtags": ({**quantity, "usernames": lines(3, "user"),
                                    "hashtags": "#one\n#two"}, per_k),
        "Mentions Custom List": ({"link": LINK, "usernames": lines(low, "user")}, per_k),
        "Mentions Hashtag": ({**quantity, "hashtag": "#travel"}, per_k),
        "Mentions User Followers": ({**quantity, "username": "https://instagram.com/nasa"},
                                    per_k),
        "Mentions Media Likers": ({**quantity, "media": "https://instagram.com/p/xyz"}, per_k),
        "Subscriptions": ({"username": "natgeo", "min": low, "max": low * 2, "delay": 30,
                           "posts": 3, "expiry": "31/12/2099"}, money(rate * low * 2 * 3 / 1000)),
        "Comment Likes": ({**quantity, "username": "commenter"}, per_k),
        "Comment Replies": ({"link": LINK, "username": "commenter",
                             "comments": lines(low, "reply ")}, per_k),
        "Poll": ({**quantity, "answer_number": 2}, per_k),
        "Invites from Groups": ({**quantity, "groups": "group_one\r\ngroup_two"}, per_k),
    }
    return table[kind]


@pytest.mark.parametrize("kind", SERVICE_TYPES)
def test_add_every_type_charges_the_right_amount(srv: SandboxServer, kind: str) -> None:
    service = service_of(srv, kind)
    params, expected = _add_params(service)
    before = balance(srv)
    reply = call(srv, action="add", service=service["service"], **params)
    assert set(reply) == {"order"} and isinstance(reply["order"], int)
    status = call(srv, action="status", order=reply["order"])
    assert Decimal(status["charge"]) == expected
    assert before - balance(srv) == expected
    assert srv.adds()[-1]["order"] == reply["order"]


def test_dripfeed_charges_quantity_times_runs(srv: SandboxServer) -> None:
    service = service_of(srv, "Default", dripfeed=True)
    low = int(service["min"])
    reply = call(srv, action="add", service=service["service"], link=LINK, quantity=low,
                 runs=4, interval=30)
    status = call(srv, action="status", order=reply["order"])
    assert Decimal(status["charge"]) == money(Decimal(service["rate"]) * low * 4 / 1000)
    plain = service_of(srv, "Default", dripfeed=False)
    refused = call(srv, action="add", service=plain["service"], link=LINK,
                   quantity=plain["min"], runs=4, interval=30)
    assert refused == {"error": "Incorrect request"}


# --- refusals ---------------------------------------------------------------------------


def test_add_refusals_use_the_real_error_strings(srv: SandboxServer) -> None:
    service = service_of(srv, "Default")
    sid, low, high = service["service"], int(service["min"]), int(service["max"])

    def add(**params: Any) -> Any:
        return call(srv, action="add", **{"service": sid, "link": LINK, "quantity": low,
                                          **params})

    assert add(quantity=low - 1) == {"error": f"Quantity less than minimal {low}"}
    assert add(quantity=high + 1) == {"error": f"Quantity more than maximum {high}"}
    assert add(service=999999) == {"error": "Incorrect service ID"}
    assert add(service="abc") == {"error": "Incorrect service ID"}
    assert add(link="instagram.com/p/x") == {"error": "Incorrect link"}
    assert add(link="javascript:alert(1)") == {"error": "Incorrect link"}
    assert add(quantity="") == {"error": "Incorrect request"}
    assert add(key="wrong") == {"error": "Invalid API key"}
    srv.add_key("poor", Decimal("0.01"))
    assert add(key="poor", quantity=high) == {"error": "Not enough funds on balance"}
    assert balance(srv, "poor") == Decimal("0.01")
    errors = [a["error"] for a in srv.adds()]
    assert errors.count("Incorrect request") == 1 and len(errors) == 9


def test_add_refuses_missing_type_parameters(srv: SandboxServer) -> None:
    for kind in SERVICE_TYPES:
        service = service_of(srv, kind)
        params, _ = _add_params(service)
        for name in params:
            if name in ("link", "expiry", "posts"):
                continue
            broken = {k: v for k, v in params.items() if k != name}
            reply = call(srv, action="add", service=service["service"], **broken)
            assert reply == {"error": "Incorrect request"}, (kind, name)


def test_subscription_validation(srv: SandboxServer) -> None:
    service = service_of(srv, "Subscriptions")
    params, _ = _add_params(service)
    sid = service["service"]
    assert call(srv, action="add", service=sid, **{**params, "delay": 7}) == {
        "error": "Incorrect request"}
    assert call(srv, action="add", service=sid, **{**params, "expiry": "2099-12-31"}) == {
        "error": "Incorrect request"}
    assert call(srv, action="add", service=sid, **{**params, "expiry": "01/01/2001"}) == {
        "error": "Incorrect request"}
    low = int(service["min"])
    assert call(srv, action="add", service=sid, **{**params, "min": low - 1}) == {
        "error": f"Quantity less than minimal {low}"}
    open_ended = {k: v for k, v in params.items() if k not in ("posts", "expiry")}
    order = call(srv, action="add", service=sid, **open_ended)["order"]
    assert call(srv, action="status", order=order)["status"] == "In progress"


def test_second_active_order_on_same_link_is_refused(srv: SandboxServer) -> None:
    srv.set_speed(60)
    service = service_of(srv, "Default")
    first = call(srv, action="add", service=service["service"], link=LINK, quantity=service["min"])
    assert "order" in first
    again = call(srv, action="add", service=service["service"], link=LINK, quantity=service["min"])
    assert again == {"error": "You have active order with this link. Please wait until order "
                              "being completed."}
    srv.force_order(first["order"], status="Completed")
    assert "order" in call(srv, action="add", service=service["service"], link=LINK,
                           quantity=service["min"])


# --- status -----------------------------------------------------------------------------


def test_batch_status_reports_unknown_ids_per_item(srv: SandboxServer) -> None:
    service = service_of(srv, "Default")
    order = call(srv, action="add", service=service["service"], link=LINK,
                 quantity=service["min"])["order"]
    srv.add_key("other", Decimal(100))
    foreign = call(srv, key="other", action="add", service=service["service"], link=LINK,
                   quantity=service["min"])["order"]
    reply = call(srv, action="status", orders=f"{order},{foreign},5")
    assert list(reply) == [str(order), str(foreign), "5"]
    assert set(reply[str(order)]) == {"charge", "start_count", "status", "remains", "currency"}
    assert reply[str(foreign)] == reply["5"] == {"error": "Incorrect order ID"}
    assert call(srv, action="status", order=foreign) == {"error": "Incorrect order ID"}
    too_many = ",".join(str(i) for i in range(101))
    assert call(srv, action="status", orders=too_many) == {"error": "Incorrect request"}


def test_status_is_instant_at_step_zero(srv: SandboxServer) -> None:
    service = service_of(srv, "Default")
    order = call(srv, action="add", service=service["service"], link=LINK,
                 quantity=service["min"])["order"]
    status = call(srv, action="status", order=order)
    assert status["status"] == "Completed" and status["remains"] == "0"
    assert int(status["start_count"]) > 0


def test_orders_progress_with_a_small_step(srv: SandboxServer) -> None:
    srv.set_speed(0.25)
    service = service_of(srv, "Default")
    started = time.monotonic()
    order = call(srv, action="add", service=service["service"], link=LINK, quantity=1000)["order"]
    first = call(srv, action="status", order=order)
    assert (first["status"], first["remains"], first["start_count"]) == ("Pending", "1000", "0")
    time.sleep(max(0.0, started + 0.55 - time.monotonic()))
    middle = call(srv, action="status", order=order)
    assert middle["status"] == "In progress" and 0 < int(middle["remains"]) < 1000
    time.sleep(max(0.0, started + 1.1 - time.monotonic()))
    assert call(srv, action="status", order=order)["status"] == "Completed"


def test_about_one_order_in_eight_ends_partial_with_a_refund() -> None:
    with SandboxServer(rejected_every=0) as server:
        service = service_of(server, "Default")
        ids = [call(server, action="add", service=service["service"], link=f"{LINK}{i}",
                    quantity=1000)["order"] for i in range(80)]
        spent = Decimal(service["rate"]) * 80
        reply = call(server, action="status", orders=",".join(map(str, ids)))
        partial = [r for r in reply.values() if r["status"] == "Partial"]
        assert 3 <= len(partial) <= 20
        assert all(0 < int(r["remains"]) < 1000 for r in partial)
        refunds = sum(money(Decimal(r["charge"]) * int(r["remains"]) / 1000) for r in partial)
        assert balance(server) == Decimal(10000) - spent + refunds


def test_forced_partial_refunds_the_undelivered_share_once(srv: SandboxServer) -> None:
    service = service_of(srv, "Default")
    order = call(srv, action="add", service=service["service"], link=LINK, quantity=1000)["order"]
    assert call(srv, action="status", order=order)["status"] == "Completed"
    after_charge = balance(srv)
    srv.force_order(order, status="Partial", remains=250)
    charge = Decimal(call(srv, action="status", order=order)["charge"])
    for _ in range(3):
        status = call(srv, action="status", order=order)
        assert (status["status"], status["remains"]) == ("Partial", "250")
    assert balance(srv) == after_charge + money(charge / 4)


# --- cancel and refill ------------------------------------------------------------------


def test_cancel_flow_and_batch_shape(srv: SandboxServer) -> None:
    srv.set_speed(60)
    service = service_of(srv, "Default", cancel=True)
    before = balance(srv)
    order = call(srv, action="add", service=service["service"], link=LINK, quantity=1000)["order"]
    reply = call(srv, action="cancel", orders=f"{order},9")
    assert reply == [{"order": order, "cancel": 1},
                     {"order": 9, "cancel": {"error": "Incorrect order ID"}}]
    status = call(srv, action="status", order=order)
    assert (status["status"], status["remains"]) == ("Canceled", "1000")
    assert balance(srv) == before
    assert call(srv, action="cancel", order=order) == [
        {"order": order, "cancel": {"error": "Order not eligible for cancel"}}]
    no_cancel = service_of(srv, "Default", cancel=False)
    other = call(srv, action="add", service=no_cancel["service"], link=LINK,
                 quantity=no_cancel["min"])["order"]
    assert call(srv, action="cancel", orders=str(other))[0]["cancel"] == {
        "error": "Order not eligible for cancel"}


def test_cancel_after_some_delivery_ends_partial(srv: SandboxServer) -> None:
    srv.set_speed(60)
    service = service_of(srv, "Default", cancel=True)
    order = call(srv, action="add", service=service["service"], link=LINK, quantity=1000)["order"]
    srv.force_order(order, status="In progress", remains=400)
    before = balance(srv)
    assert call(srv, action="cancel", orders=str(order)) == [{"order": order, "cancel": 1}]
    status = call(srv, action="status", order=order)
    assert (status["status"], status["remains"]) == ("Partial", "400")
    assert balance(srv) == before + money(Decimal(status["charge"]) * 4 / 10)


def test_refill_flow_and_batch_shapes(srv: SandboxServer) -> None:
    service = service_of(srv, "Default", refill=True)
    order = call(srv, action="add", service=service["service"], link=LINK,
                 quantity=service["min"])["order"]
    single = call(srv, action="refill", order=order)
    assert set(single) == {"refill"} and single["refill"].isdigit()
    assert call(srv, action="refill_status", refill=single["refill"]) == {"status": "Completed"}
    batch = call(srv, action="refill", orders=f"{order},3")
    assert isinstance(batch[0]["refill"], int) and batch[0]["order"] == order
    assert batch[1] == {"order": 3, "refill": {"error": "Incorrect order ID"}}
    statuses = call(srv, action="refill_status", refills=f"{batch[0]['refill']},3")
    assert statuses == [{"refill": batch[0]["refill"], "status": "Completed"},
                        {"refill": 3, "status": {"error": "Refill not found"}}]
    assert call(srv, action="refill_status", refill=3) == {"error": "Refill not found"}
    srv.add_key("other", Decimal(5))
    assert call(srv, key="other", action="refill_status", refill=single["refill"]) == {
        "error": "Refill not found"}


def test_refill_is_refused_when_not_eligible(srv: SandboxServer) -> None:
    no_refill = service_of(srv, "Default", refill=False)
    order = call(srv, action="add", service=no_refill["service"], link=LINK,
                 quantity=no_refill["min"])["order"]
    assert call(srv, action="refill", order=order) == {"error": "Order not eligible for refill"}
    refillable = service_of(srv, "Default", refill=True)
    order = call(srv, action="add", service=refillable["service"], link=LINK,
                 quantity=refillable["min"])["order"]
    srv.set_speed(60)
    assert "refill" in call(srv, action="refill", order=order)
    # One pending refill at a time.
    assert call(srv, action="refill", order=order) == {"error": "Order not eligible for refill"}
    srv.force_order(order, status="Partial", remains=1)
    assert call(srv, action="refill", order=order) == {"error": "Order not eligible for refill"}


def test_about_one_refill_in_ten_is_rejected() -> None:
    with SandboxServer(partial_every=0) as server:
        service = service_of(server, "Default", refill=True)
        order = call(server, action="add", service=service["service"], link=LINK,
                     quantity=service["min"])["order"]
        ids = [int(call(server, action="refill", order=order)["refill"]) for _ in range(50)]
        reply = call(server, action="refill_status", refills=",".join(map(str, ids)))
    rejected = [r for r in reply if r["status"] == "Rejected"]
    assert 1 <= len(rejected) <= 12
    assert {r["status"] for r in reply} == {"Completed", "Rejected"}


# --- transport --------------------------------------------------------------------------


def test_json_body_get_query_and_trailing_slash(srv: SandboxServer) -> None:
    as_json = requests.post(srv.url + "/", json={"key": srv.key, "action": "balance"}, timeout=5)
    assert as_json.json()["currency"] == "USD"
    as_get = requests.get(srv.url, params={"key": srv.key, "action": "balance"}, timeout=5)
    assert as_get.json()["balance"] == "10000.00000"
    assert call(srv, action="fly") == {"error": "Incorrect request"}
    assert call(srv, key="nope", action="balance") == {"error": "Invalid API key"}
    assert requests.post(srv.url, data={"key": srv.key, "action": "balance"},
                         files={"x": ("x", b"1")}, timeout=5).json()["currency"] == "USD"


# --- faults -----------------------------------------------------------------------------


def add_default(srv: SandboxServer, timeout: float = 5) -> requests.Response:
    return requests.post(srv.url, data={"key": srv.key, "action": "add", "service": 101,
                                        "link": LINK, "quantity": 100}, timeout=timeout)


def test_latency_delays_then_answers(srv: SandboxServer) -> None:
    srv.set_fault("latency", delay=0.3, times=1)
    started = time.perf_counter()
    assert "order" in add_default(srv).json()
    assert time.perf_counter() - started >= 0.3
    assert srv.adds()[-1]["fault"] == "latency"


def test_timeout_before_records_no_order(srv: SandboxServer) -> None:
    srv.set_fault("timeout_before", action="add", delay=1, times=1)
    with pytest.raises(requests.ReadTimeout):
        add_default(srv, timeout=0.3)
    log = srv.adds()
    assert len(log) == 1 and log[0]["fault"] == "timeout_before" and log[0]["order"] is None
    assert balance(srv) == Decimal(10000)


def test_timeout_after_records_and_charges_the_order(srv: SandboxServer) -> None:
    srv.set_fault("timeout_after", action="add", delay=1, times=1)
    with pytest.raises(requests.ReadTimeout):
        add_default(srv, timeout=0.3)
    log = srv.adds()
    assert len(log) == 1 and log[0]["fault"] == "timeout_after"
    assert isinstance(log[0]["order"], int)
    assert call(srv, action="status", order=log[0]["order"])["charge"] == "0.18500"
    assert balance(srv) == Decimal("9999.81500")


def test_dropped_connection_before_the_client_gives_up(srv: SandboxServer) -> None:
    srv.set_fault("timeout_before", delay=0.1, times=1)
    with pytest.raises(requests.ConnectionError):
        add_default(srv, timeout=3)
    assert "order" in add_default(srv).json()  # one-shot: the next call is normal


@pytest.mark.parametrize(("name", "content_type"), [
    ("http500", "text/plain"), ("html", "text/html"), ("garbage", "application/json"),
])
def test_broken_replies_are_not_json(srv: SandboxServer, name: str, content_type: str) -> None:
    srv.set_fault(name)
    for _ in range(2):  # sticky until cleared
        response = add_default(srv)
        assert response.headers["Content-Type"].startswith(content_type)
        assert response.status_code == (500 if name == "http500" else 200)
        with pytest.raises(ValueError):
            response.json()
    srv.clear_faults()
    assert "order" in add_default(srv).json()
    assert [a["fault"] for a in srv.adds()] == [name, name, None]
    assert [a["order"] is None for a in srv.adds()] == [True, True, False]


def test_truncated_reply_after_processing(srv: SandboxServer) -> None:
    srv.set_fault("truncated", times=1)
    response = add_default(srv)
    with pytest.raises(ValueError):
        json.loads(response.text)
    assert response.text.startswith('{"ord')
    assert srv.adds()[-1]["order"] is not None


def test_error_fault_with_default_and_custom_message(srv: SandboxServer) -> None:
    srv.set_fault("error", action="add")
    assert add_default(srv).json() == {"error": "Service temporarily unavailable"}
    assert call(srv, action="balance")["balance"] == "10000.00000"  # other actions unaffected
    srv.set_fault("error", action="add", message="neworder.error.not_enough_funds")
    assert add_default(srv).json() == {"error": "neworder.error.not_enough_funds"}
    assert [a["fault"] for a in srv.adds()] == ["error", "error"]


def test_fault_for_one_key_leaves_others_alone(srv: SandboxServer) -> None:
    srv.add_key("k2", Decimal(50))
    srv.set_fault("error", key="k2")
    assert call(srv, key="k2", action="balance") == {"error": "Service temporarily unavailable"}
    assert call(srv, action="balance")["balance"] == "10000.00000"


def test_refuse_closes_the_port_then_listens_again(srv: SandboxServer) -> None:
    port = srv.port
    srv.set_fault("refuse", delay=0.5)
    with pytest.raises(requests.ConnectionError):
        call(srv, action="balance", timeout=1)
    time.sleep(0.7)
    assert srv.port == port
    assert call(srv, action="balance")["currency"] == "USD"


def test_no_lists_refuses_every_list_of_ids_but_answers_single_ids(srv: SandboxServer) -> None:
    service = service_of(srv, "Default", refill=True)
    order = call(srv, action="add", service=service["service"], link=LINK,
                 quantity=service["min"])["order"]
    srv.set_fault("no_lists")

    assert call(srv, action="status", orders=f"{order}") == {"error": "Incorrect request"}
    assert call(srv, action="refill", orders=f"{order}") == {"error": "Incorrect request"}
    assert call(srv, action="status", order=order)["status"] == "Completed"
    refill = call(srv, action="refill", order=order)["refill"]
    assert call(srv, action="refill_status", refill=refill) == {"status": "Completed"}


def test_strict_lists_let_one_unknown_id_spoil_the_whole_list(srv: SandboxServer) -> None:
    service = service_of(srv, "Default", refill=True)
    orders = [call(srv, action="add", service=service["service"], link=f"{LINK}{i}",
                   quantity=service["min"])["order"] for i in range(2)]
    srv.set_fault("strict_lists")

    good = call(srv, action="refill", orders=f"{orders[0]},{orders[1]}")
    assert [item["order"] for item in good] == orders
    assert call(srv, action="status", orders=f"{orders[0]},5") == {
        "error": "Incorrect order ID"}
    assert call(srv, action="refill", orders=f"{orders[0]},5") == {
        "error": "Incorrect order ID"}
    refills = [item["refill"] for item in good]
    assert call(srv, action="refill_status", refills=f"{refills[0]},7") == {
        "error": "Refill not found"}
    assert len(call(srv, action="refill_status", refills=f"{refills[0]},{refills[1]}")) == 2
    # Nothing in the refused list was done: the next refill takes the very next id.
    assert call(srv, action="refill", order=orders[1]) == {"refill": str(refills[1] + 1)}


def test_every_fault_name_is_known() -> None:
    assert set(FAULT_NAMES) == {"latency", "refuse", "timeout_before", "timeout_after",
                                "http500", "http429", "html", "truncated", "error", "garbage",
                                "no_lists", "strict_lists", "trickle"}
    with pytest.raises(ValueError):
        SandboxServer().set_fault("meltdown")


# --- control endpoint -------------------------------------------------------------------


def test_control_endpoint_faults_keys_and_add_log(srv: SandboxServer) -> None:
    control(srv, "POST", "keys", {"key": "api-2", "balance": "12.5"})
    assert call(srv, key="api-2", action="balance") == {"balance": "12.50000", "currency": "USD"}
    reply = control(srv, "POST", "fault", {"key": "api-2", "action": "add", "fault": "error",
                                           "message": "Maintenance", "times": 1})
    assert reply["faults"][0]["name"] == "error"
    add = call(srv, key="api-2", action="add", service=101, link=LINK, quantity=100)
    assert add == {"error": "Maintenance"}
    control(srv, "POST", "fault", {"fault": "http500"})
    control(srv, "DELETE", "fault")
    assert control(srv, "GET", "fault") == {"faults": []}
    adds = control(srv, "GET", "adds?key=api-2")
    assert adds[0]["fault"] == "error" and adds[0]["params"]["link"] == LINK
    assert "key" not in adds[0]["params"]
    assert control(srv, "GET", "adds?key=nobody") == []


def test_control_endpoint_switches_quirks_on_and_off(srv: SandboxServer) -> None:
    assert control(srv, "GET", "quirk") == {"quirks": []}
    control(srv, "POST", "quirk", {"quirk": "html_prefix"})
    control(srv, "POST", "quirk", {"quirk": "zero_remains"})
    assert control(srv, "GET", "quirk") == {"quirks": ["html_prefix", "zero_remains"]}
    control(srv, "POST", "quirk", {"quirk": "html_prefix", "on": False})
    assert srv.has_quirk("zero_remains") and not srv.has_quirk("html_prefix")
    bad = requests.post(f"{srv.control_url}/quirk", json={"quirk": "nonsense"}, timeout=5)
    assert bad.status_code == 400 and "unknown quirk" in bad.json()["error"]
    control(srv, "DELETE", "quirk")
    assert control(srv, "GET", "quirk") == {"quirks": []}


def test_control_endpoint_changes_the_catalog(srv: SandboxServer) -> None:
    control(srv, "POST", "catalog", {"update": {"101": {"rate": "2.50"}}, "remove": [102]})
    services = {s["service"]: s for s in call(srv, action="services")}
    assert services[101]["rate"] == "2.50" and 102 not in services
    assert call(srv, action="add", service=102, link=LINK, quantity=100) == {
        "error": "Incorrect service ID"}
    control(srv, "POST", "catalog", {"services": [
        {"service": 7, "name": "Only one", "type": "Default", "category": "X", "rate": 1,
         "min": "10", "max": "100", "refill": True, "cancel": False}]})
    only = call(srv, action="services")
    assert only == [{"service": 7, "name": "Only one", "type": "Default", "category": "X",
                     "rate": "1", "min": "10", "max": "100", "refill": True, "cancel": False,
                     "dripfeed": False, "description": ""}]
    control(srv, "POST", "catalog", {"size": 250})
    assert len(call(srv, action="services")) == 250
    control(srv, "POST", "catalog", {"services": []})
    assert call(srv, action="services") == []


def test_control_endpoint_forces_orders_and_speed(srv: SandboxServer) -> None:
    assert control(srv, "POST", "speed", {"step_seconds": 60})["step_seconds"] == 60
    order = call(srv, action="add", service=101, link=LINK, quantity=100)["order"]
    assert call(srv, action="status", order=order)["status"] == "Pending"
    info = control(srv, "POST", f"orders/{order}", {"status": "In progress", "remains": 40,
                                                    "start_count": 1234})
    assert info["shown_status"] == "In progress"
    status = call(srv, action="status", order=order)
    assert (status["status"], status["remains"], status["start_count"]) == (
        "In progress", "40", "1234")
    control(srv, "POST", "speed", {"step_seconds": 0})
    fresh = call(srv, action="add", service=101, link=LINK + "2", quantity=100)["order"]
    assert call(srv, action="status", order=fresh)["status"] == "Completed"
    missing = requests.get(f"{srv.control_url}/orders/1", timeout=5)
    assert missing.status_code == 404


# --- speed, persistence and CLI ---------------------------------------------------------


def test_status_for_100_ids_is_fast(srv: SandboxServer) -> None:
    srv.set_speed(60)
    session = requests.Session()
    ids = [session.post(srv.url, data={"key": srv.key, "action": "add", "service": 121,
                                       "link": f"{LINK}{i}", "quantity": 100},
                        timeout=5).json()["order"] for i in range(100)]
    payload = {"key": srv.key, "action": "status", "orders": ",".join(map(str, ids))}
    session.post(srv.url, data=payload, timeout=5)
    started = time.perf_counter()
    reply = session.post(srv.url, data=payload, timeout=5).json()
    assert time.perf_counter() - started < 0.25
    assert len(reply) == 100 and all(r["status"] == "Pending" for r in reply.values())


def test_sqlite_file_keeps_orders_and_balances(tmp_path: Path) -> None:
    db = str(tmp_path / "sandbox.sqlite3")
    with SandboxServer(db=db) as first:
        order = call(first, action="add", service=101, link=LINK, quantity=100)["order"]
    with SandboxServer(db=db) as second:
        assert call(second, action="status", order=order)["charge"] == "0.18500"
        assert balance(second) == Decimal("9999.81500")
        assert len(second.adds()) == 1


def _read_line(stream: Any, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


def test_cli_prints_its_url_and_serves(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_STEP_SECONDS": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "providers.sandbox", "--port", "0", "--key", "cli-key:7.5",
         "--db", str(tmp_path / "cli.sqlite3")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(process.stdout, timeout=10)
        assert "http://127.0.0.1:" in line and "key=sandbox-key" in line
        url = next(word for word in line.split() if word.startswith("http://"))
        reply = requests.post(url, data={"key": "cli-key", "action": "balance"}, timeout=5)
        assert reply.json() == {"balance": "7.50000", "currency": "USD"}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
