"""Errors reach Sentry without our customers' API keys or our providers' keys: through
sentry-sdk's own pipeline (its Django, logging and stack-frame capture) with a transport
that keeps the events here instead of sending them."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from panel.error_reports import FILTERED, init_sentry, scrub_event, scrub_text
from panel.models import ApiKey
from providers.client import Client

PROVIDER_KEY = "0f3c9a51d2b84e6fa7c1d09e5b3a2c4f"  # 32 hex, as many upstreams issue them


class KeptHere(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(dict(event))


@pytest.fixture
def sentry() -> Any:
    kept = KeptHere()
    init_sentry("http://public@127.0.0.1:9/1", environment="test", transport=kept)
    yield kept
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: reporting off again for the rest of the session


def _send_with(key: str, provider_key: str) -> None:
    data = {"key": provider_key, "action": "add", "service": "1"}  # noqa: F841 (a frame local)
    url = f"https://upstream.example/api/v2?key={provider_key}"  # noqa: F841
    client = Client("https://upstream.example/api/v2", provider_key)  # noqa: F841
    api_key = key  # noqa: F841
    raise RuntimeError(f"upstream exploded while sending key={provider_key}")


def test_an_exception_is_reported_without_any_key(sentry):
    customer_key = "a" * 8 + "5d41402abc4b2a76b9719d911017c592" + "b" * 24
    try:
        _send_with(customer_key, PROVIDER_KEY)
    except RuntimeError:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()

    assert len(sentry.events) == 1
    sent = json.dumps(sentry.events[0])
    assert PROVIDER_KEY not in sent and customer_key not in sent
    assert "upstream exploded" in sent  # the report still says what happened
    frame = sentry.events[0]["exception"]["values"][0]["stacktrace"]["frames"][-1]
    assert frame["vars"]["api_key"] == FILTERED
    assert frame["vars"]["data"]["key"] == FILTERED and "add" in frame["vars"]["data"]["action"]


def test_a_logged_error_is_reported_without_the_key(sentry):
    logging.getLogger("orders.dispatch").error("send failed: POST key=%s action=add",
                                               PROVIDER_KEY)
    sentry_sdk.flush()

    assert sentry.events and PROVIDER_KEY not in json.dumps(sentry.events)


@pytest.mark.django_db(transaction=True)
def test_an_api_call_that_crashes_is_reported_without_the_customers_key(
        sentry, live_server, alice, monkeypatch):
    from orders import api

    _, raw = ApiKey.issue(alice)

    def crash(user: Any, params: Any) -> Any:
        raise ValueError("balance action broke")

    monkeypatch.setitem(api.ACTIONS, "balance", crash)
    reply = requests.post(f"{live_server.url}/api/v2?key={raw}",
                          data={"key": raw, "action": "balance"}, timeout=10)
    sentry_sdk.flush()

    assert reply.json() == {"error": "Incorrect request"}  # the client sees no crash
    assert sentry.events, "the crash was not reported"
    sent = json.dumps(sentry.events)
    assert raw not in sent and "balance action broke" in sent


@pytest.mark.parametrize("text", [
    f"key={PROVIDER_KEY}&action=add", f'{{"key": "{PROVIDER_KEY}"}}',
    f"api_key: {PROVIDER_KEY}", f"Client(url='x', key='{PROVIDER_KEY}')",
    f"token={PROVIDER_KEY[:10]}", f"the key {PROVIDER_KEY} was refused",
])
def test_secrets_in_text_are_cut(text):
    assert PROVIDER_KEY[:10] not in scrub_text(text)


def test_names_that_hold_secrets_are_filtered_at_any_depth():
    event = {"request": {"headers": {"Authorization": "Bearer x", "Cookie": "sessionid=y"},
                         "data": {"key": "k", "quantity": "100"}},
             "extra": {"provider": {"api_key_encrypted": "z", "name": "Sandbox"}}}
    scrubbed = scrub_event(event)
    assert scrubbed["request"]["headers"] == {"Authorization": FILTERED, "Cookie": FILTERED}
    assert scrubbed["request"]["data"] == {"key": FILTERED, "quantity": "100"}
    assert scrubbed["extra"]["provider"] == {"api_key_encrypted": FILTERED, "name": "Sandbox"}
