"""The panel's own API v2: every action and shape, every error text, isolation between
customers, and no input that produces anything but a JSON reply with HTTP 200."""

import json
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import dispatch, polling
from orders.models import CustomRate, Order, Refill
from panel.models import ApiKey, LedgerEntry
from tests.conftest import make_service, valid_add_params

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys(alice, bob):
    return {"alice": ApiKey.issue(alice)[1], "bob": ApiKey.issue(bob)[1]}


@pytest.fixture
def service(catalog):
    return make_service(catalog, "Default", one_order_per_link=False,
                        upstream={"refill": True, "cancel": True}, refill=True, cancel=True)


def call(client, key, action, **params):
    response = client.post("/api/v2", {"key": key, "action": action, **params})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def _place(client, key, service, **extra):
    params = {"service": service.pk, "link": "https://x.com/p/1",
              "quantity": service.min_quantity, **extra}
    reply = call(client, key, "add", **params)
    assert set(reply) == {"order"} and isinstance(reply["order"], int), reply
    return reply["order"]


def _complete(order_id):
    dispatch.dispatch_one(order_id)
    Order.objects.filter(pk=order_id).update(next_check_at=timezone.now())
    polling.poll_orders()


# --- transport ------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v2", "/api/v2/"])
def test_both_paths_answer_without_a_redirect(client, keys, path):
    response = client.post(path, {"key": keys["alice"], "action": "balance"})

    assert response.status_code == 200
    assert response.json() == {"balance": "100.00000", "currency": "USD"}


def test_a_json_body_and_a_get_query_work_too(client, keys):
    body = json.dumps({"key": keys["alice"], "action": "balance"})
    as_json = client.post("/api/v2", body, content_type="application/json")
    as_get = client.get("/api/v2", {"key": keys["alice"], "action": "balance"})

    assert as_json.json() == as_get.json() == {"balance": "100.00000", "currency": "USD"}


def test_errors_are_json_with_http_200(client):
    response = client.post("/api/v2", {"key": "nope", "action": "balance"})

    assert response.status_code == 200
    assert response.json() == {"error": "Invalid API key"}


def test_revoked_keys_and_suspended_customers_get_invalid_api_key(client, alice, bob, keys):
    ApiKey.objects.get(user=alice).revoke()
    bob.is_active = False
    bob.save()

    assert call(client, keys["alice"], "balance") == {"error": "Invalid API key"}
    assert call(client, keys["bob"], "balance") == {"error": "Invalid API key"}


def test_a_missing_or_unknown_action_is_an_incorrect_request(client, keys):
    assert call(client, keys["alice"], "") == {"error": "Incorrect request"}
    assert call(client, keys["alice"], "refund_me") == {"error": "Incorrect request"}


# --- services and add -----------------------------------------------------------------

def test_services_lists_enabled_services_at_the_customers_own_price(
        client, keys, alice, bob, catalog, service):
    hidden = make_service(catalog, "Poll", enabled=False)
    CustomRate.objects.create(user=bob, service=service, rate=Decimal("999"))

    mine = {s["service"]: s for s in call(client, keys["alice"], "services")}
    bobs = {s["service"]: s for s in call(client, keys["bob"], "services")}

    assert hidden.pk not in mine
    listed = mine[service.pk]
    assert listed["name"] == service.name and listed["type"] == "Default"
    assert listed["min"] == str(service.min_quantity) and listed["max"] == str(
        service.max_quantity)
    assert listed["refill"] is True and listed["cancel"] is True
    assert isinstance(listed["rate"], str) and Decimal(listed["rate"]) > 0
    assert bobs[service.pk]["rate"] == "999.00000"


@pytest.mark.parametrize("kind", ["Default", "Package", "Custom Comments", "Subscriptions",
                                  "Mentions with Hashtags", "Poll", "Invites from Groups"])
def test_add_places_orders_of_each_type_through_the_same_function(client, keys, catalog, kind):
    service = make_service(catalog, kind)
    params = valid_add_params({"service": service.pk, "type": kind,
                               "min": service.min_quantity})
    params = {k: "\n".join(v) if isinstance(v, list) else v for k, v in params.items()}

    reply = call(client, keys["alice"], "add", service=service.pk, **params)

    order = Order.objects.get(pk=reply["order"])
    assert order.service == service and order.status == Order.Status.QUEUED


@pytest.mark.parametrize(("params", "error"), [
    ({"service": "999999", "link": "https://x.com/a", "quantity": "100"},
     "Incorrect service ID"),
    ({"service": "abc"}, "Incorrect service ID"),
    ({"link": "https://x.com/a", "quantity": "100"}, "Incorrect request"),
    ({"service": "{pk}", "link": "ftp://x", "quantity": "100"}, "Incorrect link"),
    ({"service": "{pk}", "link": "https://x.com/a", "quantity": "1"},
     "Quantity less than minimal {min}"),
    ({"service": "{pk}", "link": "https://x.com/a", "quantity": "999999999"},
     "Quantity more than maximum {max}"),
    ({"service": "{pk}", "link": "https://x.com/a", "quantity": "-5"}, "Incorrect request"),
    ({"service": "{pk}", "link": "https://x.com/a", "quantity": "1e3"}, "Incorrect request"),
])
def test_add_errors_use_the_api_texts_and_write_nothing(client, keys, service, params, error):
    fill = {"pk": service.pk, "min": service.min_quantity, "max": service.max_quantity}
    params = {k: v.format(**fill) for k, v in params.items()}

    reply = call(client, keys["alice"], "add", **params)

    assert reply == {"error": error.format(**fill)}
    assert not Order.objects.exists()
    assert not LedgerEntry.objects.filter(kind="charge").exists()


def test_add_refuses_what_the_balance_does_not_cover(client, keys, service):
    reply = call(client, keys["alice"], "add", service=service.pk, link="https://x.com/a",
                 quantity=service.max_quantity)

    assert reply == {"error": "Not enough funds on balance"}


def test_add_refuses_a_second_active_order_for_one_link(client, keys, catalog):
    strict = make_service(catalog, "Default", one_order_per_link=True)
    _place(client, keys["alice"], strict)

    reply = call(client, keys["alice"], "add", service=strict.pk, link="https://x.com/p/1",
                 quantity=strict.min_quantity)

    assert reply == {"error": "You have active order with this link. Please wait until "
                              "order being completed."}


# --- status ---------------------------------------------------------------------------

def test_status_single_and_multiple(client, keys, service):
    first = _place(client, keys["alice"], service)
    second = _place(client, keys["alice"], service)
    _complete(first)

    single = call(client, keys["alice"], "status", order=first)
    many = call(client, keys["alice"], "status", orders=f"{first},{second},424242")

    order = Order.objects.get(pk=first)
    assert single == {"charge": f"{order.charge:.5f}", "start_count": str(order.start_count),
                      "status": "Completed", "remains": "0", "currency": "USD"}
    assert many[str(first)] == single
    assert many[str(second)]["status"] == "Pending"
    assert many[str(second)]["remains"] == str(service.min_quantity)
    assert many["424242"] == {"error": "Incorrect order ID"}


def test_partial_status_shows_what_the_customer_paid_after_the_refund(
        client, keys, service, sandbox):
    order_id = _place(client, keys["alice"], service, quantity=1000)
    dispatch.dispatch_one(order_id)
    sandbox.force_order(Order.objects.get(pk=order_id).upstream_id, status="Partial",
                        remains=400)
    Order.objects.filter(pk=order_id).update(next_check_at=timezone.now())
    polling.poll_orders()

    reply = call(client, keys["alice"], "status", order=order_id)

    order = Order.objects.get(pk=order_id)
    assert reply["status"] == "Partial" and reply["remains"] == "400"
    assert Decimal(reply["charge"]) == order.charge - order.refunded


@pytest.mark.parametrize("orders", ["", ",,,", ",".join(str(i) for i in range(1, 102))])
def test_an_empty_or_oversized_id_list_is_an_incorrect_request(client, keys, orders):
    assert call(client, keys["alice"], "status", orders=orders) == {"error": "Incorrect request"}


def test_odd_ids_in_a_list_are_per_item_errors(client, keys):
    reply = call(client, keys["alice"], "status", orders="abc,-1,99999999999999999999,0")

    assert reply == {k: {"error": "Incorrect order ID"}
                     for k in ["abc", "-1", "99999999999999999999", "0"]}


# --- isolation ------------------------------------------------------------------------

def test_another_customers_orders_look_like_ids_that_do_not_exist(client, keys, service):
    theirs = _place(client, keys["bob"], service)
    _complete(theirs)
    nothing = 987654

    for order_id in (theirs, nothing):
        assert call(client, keys["alice"], "status", order=order_id) == {
            "error": "Incorrect order ID"}
        assert call(client, keys["alice"], "refill", order=order_id) == {
            "error": "Incorrect order ID"}
    many = call(client, keys["alice"], "status", orders=f"{theirs},{nothing}")
    assert many[str(theirs)] == many[str(nothing)] == {"error": "Incorrect order ID"}
    refills = call(client, keys["alice"], "refill", orders=f"{theirs},{nothing}")
    assert [r["refill"] for r in refills] == [{"error": "Incorrect order ID"}] * 2
    cancels = call(client, keys["alice"], "cancel", orders=f"{theirs},{nothing}")
    assert [c["cancel"] for c in cancels] == [{"error": "Incorrect order ID"}] * 2

    bobs_refill = call(client, keys["bob"], "refill", order=theirs)["refill"]
    assert call(client, keys["alice"], "refill_status", refill=bobs_refill) == {
        "error": "Refill not found"}
    assert call(client, keys["alice"], "refill_status", refills=bobs_refill) == [
        {"refill": int(bobs_refill), "status": {"error": "Refill not found"}}]


# --- refill, refill_status, cancel, balance --------------------------------------------

def test_refill_single_and_multiple_and_their_statuses(client, keys, service):
    done = [_place(client, keys["alice"], service) for _ in range(2)]
    live = _place(client, keys["alice"], service)
    for order_id in done:
        _complete(order_id)

    single = call(client, keys["alice"], "refill", order=done[0])
    many = call(client, keys["alice"], "refill", orders=f"{done[1]},{live}")

    assert set(single) == {"refill"} and single["refill"].isdigit()
    assert many[0]["order"] == done[1] and isinstance(many[0]["refill"], int)
    assert many[1] == {"order": live, "refill": {"error": "Order not eligible for refill"}}
    again = call(client, keys["alice"], "refill", order=done[0])
    assert again == {"error": "Order not eligible for refill"}  # one is already pending

    status = call(client, keys["alice"], "refill_status", refill=single["refill"])
    statuses = call(client, keys["alice"], "refill_status",
                    refills=f"{single['refill']},{many[0]['refill']},777")
    assert status == {"status": "Pending"}
    assert statuses[0] == {"refill": int(single["refill"]), "status": "Pending"}
    assert statuses[2] == {"refill": 777, "status": {"error": "Refill not found"}}
    assert Refill.objects.count() == 2


def test_cancel_reports_per_order(client, keys, service, catalog):
    no_cancel = make_service(catalog, "Poll", cancel=False)
    first = _place(client, keys["alice"], service)
    other = call(client, keys["alice"], "add", service=no_cancel.pk, link="https://x.com/q",
                 quantity=no_cancel.min_quantity, answer_number=1)["order"]

    reply = call(client, keys["alice"], "cancel", orders=f"{first},{other},31337")

    assert reply == [
        {"order": first, "cancel": 1},
        {"order": other, "cancel": {"error": "Order not eligible for cancel"}},
        {"order": 31337, "cancel": {"error": "Incorrect order ID"}},
    ]


def test_balance_follows_the_ledger(client, keys, service):
    _place(client, keys["alice"], service)

    reply = call(client, keys["alice"], "balance")

    charged = Order.objects.get().charge
    assert reply == {"balance": f"{Decimal('100') - charged:.5f}", "currency": "USD"}


# --- hostile input ----------------------------------------------------------------------

@pytest.mark.parametrize("params", [
    {"action": "status", "order": "1' OR 1=1 --"},
    {"action": "status", "order": "😀"},
    {"action": "status"},
    {"action": "refill"},
    {"action": "refill_status"},
    {"action": "cancel"},
    {"action": "add", "service": "1" * 400},
    {"action": "add", "service": "{pk}", "link": "https://x.com/" + "é" * 3000,
     "quantity": "100"},
    {"action": "add", "service": "{pk}", "link": "https://x.com/a", "quantity": "9" * 50},
    {"action": "status", "orders": "1," * 5000},
    {"action": "services", "extra": "ignored", "unknown[]": "x"},
])
def test_no_input_makes_it_fail(client, keys, service, params):
    params = {k: v.replace("{pk}", str(service.pk)) for k, v in params.items()}

    reply = call(client, keys["alice"], params.pop("action"), **params)

    assert isinstance(reply, (dict, list))
    assert not Order.objects.exists()


def test_a_one_megabyte_comments_list_is_refused_cleanly(client, keys, catalog):
    comments = make_service(catalog, "Custom Comments")
    huge = "\n".join(["a" * 100] * 10_400)  # about 1 MB

    reply = call(client, keys["alice"], "add", service=comments.pk, link="https://x.com/a",
                 comments=huge)

    assert "error" in reply
    assert not Order.objects.exists()


def test_repeated_parameters_count_once(client, keys, service):
    response = client.post("/api/v2", f"key={keys['alice']}&action=status&action=balance",
                           content_type="application/x-www-form-urlencoded")

    assert response.json() == {"balance": "100.00000", "currency": "USD"}


def test_a_body_over_the_upload_limit_is_a_json_error(client, keys, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/api/v2", {"key": keys["alice"], "action": "add",
                                       "comments": "x" * 5000})

    assert response.status_code == 200
    assert response.json() == {"error": "Incorrect request"}


def test_rate_limits_answer_in_the_same_json_shape(client, keys, settings):
    from django.core.cache import cache

    cache.clear()
    settings.API_RATE_LIMIT_PER_KEY = 3

    replies = [call(client, keys["alice"], "balance") for _ in range(5)]

    assert [("error" in r) for r in replies] == [False, False, False, True, True]
    assert replies[-1] == {"error": "Too many requests, please slow down"}
    assert "error" not in call(client, keys["bob"], "balance")  # per key, not global


def test_the_key_never_appears_in_the_log(client, keys, service, caplog):
    caplog.set_level("DEBUG")
    _place(client, keys["alice"], service)
    call(client, keys["alice"], "status", order=1)

    assert keys["alice"] not in caplog.text
    assert "action=add" in caplog.text and "customer=" in caplog.text


@pytest.mark.parametrize(("proxies", "forwarded", "expected"), [
    (0, "203.0.113.9", "10.0.0.2"),                   # no proxy trusted: the socket's peer
    (1, "203.0.113.9", "203.0.113.9"),                # what our proxy saw
    (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),       # a client cannot forge its way in
    (2, "198.51.100.7, 203.0.113.9", "198.51.100.7"),
    (2, "203.0.113.9", "10.0.0.2"),                   # fewer hops than proxies: the peer
])
def test_the_per_address_limit_sees_clients_through_trusted_proxies(
        rf, settings, proxies, forwarded, expected):
    from orders.api import client_address

    settings.TRUSTED_PROXY_COUNT = proxies
    request = rf.post("/api/v2", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)

    assert client_address(request) == expected


def test_two_clients_behind_one_proxy_have_their_own_limits(client, keys, alice, settings):
    from django.core.cache import cache

    cache.clear()
    settings.TRUSTED_PROXY_COUNT = 1
    settings.API_RATE_LIMIT_PER_IP = 2

    def balance(address):
        return client.post("/api/v2", {"key": keys["alice"], "action": "balance"},
                           REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=address).json()

    first = [balance("198.51.100.1") for _ in range(3)]
    assert "error" in first[-1] and "error" not in first[0]
    assert "error" not in balance("198.51.100.2")


def test_calls_are_served_uncounted_while_the_rate_limits_redis_is_down(
        client, keys, settings, monkeypatch):
    import redis

    from orders import api
    from panel.devdb import free_port

    settings.API_RATE_LIMIT_PER_KEY = 1
    dead = redis.Redis(port=free_port(), socket_connect_timeout=1)  # nothing listens there
    monkeypatch.setattr(api, "_redis", lambda: dead)

    assert [("error" in call(client, keys["alice"], "balance")) for _ in range(3)] == [
        False, False, False]


@pytest.mark.parametrize("status", list(Order.Status))
def test_the_batch_status_query_answers_what_an_order_says(alice, bob, service, status):
    from orders.models import api_statuses
    from orders.placing import place_order

    order = place_order(alice, service.pk, {"link": "https://x.com/s",
                                            "quantity": service.min_quantity})
    others = place_order(bob, service.pk, {"link": "https://x.com/s",
                                           "quantity": service.min_quantity})
    for remains, start, refunded in ((None, None, Decimal(0)), (0, 0, Decimal("0.00001")),
                                     (7, 1234, order.charge)):
        Order.objects.filter(pk=order.pk).update(status=status, remains=remains,
                                                 start_count=start, refunded=refunded)
        order.refresh_from_db()

        assert api_statuses(alice.pk, [order.pk, others.pk, 10**12], "EUR") == {
            order.pk: order.to_api_dict("EUR")}


def test_api_calls_skip_the_page_middleware_but_not_the_host_check(client, keys):
    reply = client.post("/api/v2", {"key": keys["alice"], "action": "balance"})
    page = client.get("/terms/")

    assert "error" not in reply.json()
    assert reply.headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware's
    assert "Content-Security-Policy" in page.headers
    assert "Content-Security-Policy" not in reply.headers and not reply.cookies
    assert client.post("/api/v2", {"key": keys["alice"], "action": "balance"},
                       HTTP_HOST="evil.example").status_code == 400
