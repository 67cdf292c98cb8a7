"""The client against the live sandbox: every action, and how each fault is classified."""

from decimal import Decimal

import pytest

from providers.client import (
    Client,
    ErrorKind,
    OrderStatus,
    ProviderError,
    RefillState,
    UpstreamStatus,
)
from providers.sandbox import SandboxServer
from tests.conftest import valid_add_params

ALL_TYPES = {
    "Default", "Package", "Custom Comments", "Custom Comments Package", "Mentions with Hashtags",
    "Mentions Custom List", "Mentions Hashtag", "Mentions User Followers",
    "Mentions Media Likers", "Subscriptions", "Comment Likes", "Comment Replies", "Poll",
    "Invites from Groups",
}


def _client(sandbox: SandboxServer, **kwargs) -> Client:
    options = {"allow_private": True, "read_timeout": 5, "retry_backoff": 0.01, **kwargs}
    return Client(sandbox.url, sandbox.key, name="sandbox", **options)


def _first(sandbox: SandboxServer, *, refill: bool | None = None, cancel: bool | None = None,
           kind: str = "Default") -> dict:
    for service in sandbox.services():
        if service["type"] != kind:
            continue
        if refill is not None and service["refill"] != refill:
            continue
        if cancel is not None and service["cancel"] != cancel:
            continue
        return service
    raise LookupError(kind)


def test_services_lists_every_type_with_decimal_rates(sandbox):
    services = _client(sandbox).services()

    assert {s.type for s in services} == ALL_TYPES
    assert all(isinstance(s.rate, Decimal) and s.rate > 0 for s in services)
    assert all(0 < s.min <= s.max for s in services)


@pytest.mark.parametrize("kind", sorted(ALL_TYPES))
def test_add_places_an_order_of_every_type(sandbox, kind):
    client = _client(sandbox)
    service = _first(sandbox, kind=kind)

    order_id = client.add(service["service"], **valid_add_params(service))

    assert order_id > 0
    status = client.status(order_id)
    assert status.status in set(UpstreamStatus)
    assert status.currency == "USD"
    assert [a["order"] for a in sandbox.adds()] == [order_id]


def test_add_errors_come_back_typed_and_definite(sandbox):
    client = _client(sandbox)
    service = _first(sandbox)
    cases = [
        ({"service": 999999, "link": "https://x.com/a", "quantity": 100},
         ErrorKind.INCORRECT_SERVICE),
        ({"service": service["service"], "link": "https://x.com/a",
          "quantity": int(service["min"]) - 1}, ErrorKind.QUANTITY_BOUNDS),
        ({"service": service["service"], "link": "not a link", "quantity": service["min"]},
         ErrorKind.BAD_LINK),
    ]
    for params, kind in cases:
        with pytest.raises(ProviderError) as excinfo:
            client.add(**params)
        assert (excinfo.value.kind, excinfo.value.definite) == (kind, True)

    sandbox.set_balance(sandbox.key, "0")
    with pytest.raises(ProviderError) as excinfo:
        client.add(service["service"], link="https://x.com/a", quantity=service["min"])
    assert excinfo.value.kind == ErrorKind.NOT_ENOUGH_FUNDS


def test_a_wrong_key_is_an_invalid_key_error(sandbox):
    client = Client(sandbox.url, "wrong-key", allow_private=True, retry_backoff=0.01)

    with pytest.raises(ProviderError) as excinfo:
        client.balance()
    assert excinfo.value.kind == ErrorKind.INVALID_KEY
    assert "wrong-key" not in str(excinfo.value)


def test_status_in_batches_with_per_item_errors(sandbox):
    client = _client(sandbox)
    service = _first(sandbox)
    ids = [client.add(service["service"], link=f"https://x.com/{i}", quantity=service["min"])
           for i in range(3)]

    statuses = client.statuses([*ids, 987654])

    # At step 0 every order has finished; the sandbox ends about one in eight Partial.
    finished = {UpstreamStatus.COMPLETED, UpstreamStatus.PARTIAL}
    assert all(isinstance(s := statuses[i], OrderStatus) and s.status in finished for i in ids)
    assert isinstance(statuses[987654], ProviderError)
    assert statuses[987654].kind == ErrorKind.INCORRECT_ORDER


def test_partial_status_carries_remains_and_charge(sandbox):
    client = _client(sandbox)
    service = _first(sandbox)
    order_id = client.add(service["service"], link="https://x.com/p", quantity=1000)
    sandbox.force_order(order_id, status="Partial", remains=250)

    status = client.status(order_id)

    assert status.status == UpstreamStatus.PARTIAL
    assert status.remains == 250
    assert status.charge == Decimal(service["rate"])  # rate per 1000, times 1000


def test_refill_single_and_batch_and_their_statuses(sandbox):
    client = _client(sandbox)
    service = _first(sandbox, refill=True)
    ids = [client.add(service["service"], link=f"https://x.com/r{i}", quantity=service["min"])
           for i in range(2)]
    for order_id in ids:
        sandbox.force_order(order_id, status="Completed", remains=0)
    assert all(client.status(i).status == UpstreamStatus.COMPLETED for i in ids)

    single = client.refill(ids[0])
    batch = client.refills([ids[1], 424242])

    assert single > 0
    second = batch[ids[1]]
    assert isinstance(second, int)
    assert isinstance(batch[424242], ProviderError)
    assert client.refill_status(single) in set(RefillState)
    states = client.refill_statuses([single, second, 777777])
    assert states[single] in set(RefillState)
    assert isinstance(states[777777], ProviderError)


def test_cancel_accepts_for_cancelable_orders_and_reports_others(sandbox):
    sandbox.set_speed(60)  # orders stay in progress long enough to cancel
    client = _client(sandbox)
    cancelable = _first(sandbox, cancel=True)
    order_id = client.add(cancelable["service"], link="https://x.com/c",
                          quantity=cancelable["min"])

    result = client.cancel([order_id, 31337])

    assert result[order_id] is True
    assert isinstance(result[31337], ProviderError)
    assert client.status(order_id).status == UpstreamStatus.CANCELED


def test_balance_is_decimal_with_currency(sandbox):
    sandbox.set_balance(sandbox.key, "100.84292")

    balance = _client(sandbox).balance()

    assert (balance.amount, balance.currency) == (Decimal("100.84292"), "USD")


# --- failure classification: each fault, definite or unknown, never resent -----------------

FAULTS = [
    # fault, definite?, was the order recorded upstream?
    ("error", True, False),
    ("timeout_before", False, False),
    ("timeout_after", False, True),
    ("http500", False, False),
    ("html", False, False),
    ("truncated", False, True),  # the order went through; its reply was cut
    ("garbage", False, False),
]


@pytest.mark.parametrize(("fault", "definite", "recorded"), FAULTS)
def test_add_failure_is_classified_and_never_retried(sandbox, fault, definite, recorded):
    client = _client(sandbox, read_timeout=0.5)
    service = _first(sandbox)
    sandbox.set_fault(fault, action="add", delay=1.5)

    with pytest.raises(ProviderError) as excinfo:
        client.add(service["service"], link="https://x.com/f", quantity=service["min"])

    assert excinfo.value.definite is definite
    adds = sandbox.adds()
    assert len(adds) == 1, "add must reach the upstream exactly once"
    assert (adds[0]["order"] is not None) is recorded


def test_connection_refused_is_definite_and_nothing_reaches_the_upstream(sandbox):
    client = _client(sandbox)
    service = _first(sandbox)
    sandbox.set_fault("refuse", delay=2)

    with pytest.raises(ProviderError) as excinfo:
        client.add(service["service"], link="https://x.com/f", quantity=service["min"])

    assert excinfo.value.definite is True
    assert sandbox.adds() == []


@pytest.mark.parametrize("fault", ["http500", "html", "truncated", "garbage"])
def test_read_only_actions_retry_once_the_upstream_recovers(sandbox, fault):
    sandbox.set_fault(fault, action="balance", times=1)

    assert _client(sandbox, read_retries=1).balance().currency == "USD"


def test_read_only_actions_give_up_after_their_retries(sandbox):
    sandbox.set_fault("http500", action="services")

    with pytest.raises(ProviderError) as excinfo:
        _client(sandbox, read_retries=2).services()
    assert excinfo.value.definite is False
