"""The demo gateway, for `make run` and the tests: a hosted-checkout page
(payments/demo_checkout.py, served by the panel only while PAYMENTS_DEMO_ENABLED) where a
person pays or fails, after which it notifies the panel's webhook over HTTP, signed like
Stripe signs (an HMAC-SHA256 of "timestamp.body" with a shared secret) — so the panel treats
it exactly as a real gateway.

The checkout's details travel in a signed token in the page's URL: like a real gateway, the
page keeps no state in the panel's database and reads none of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse

from payments.gateways import (
    BadSignature,
    Checkout,
    CheckoutRequest,
    EventKind,
    GatewayError,
    Notification,
)

TOKEN_SALT = "payments.demo.checkout"  # noqa: S105 (a salt, not a secret)
TOLERANCE_SECONDS = 300
HEADER = "Demo-Signature"
STATUSES = {s.value: s for s in (EventKind.PENDING, EventKind.PAID, EventKind.FAILED,
                                 EventKind.EXPIRED, EventKind.CANCELED, EventKind.REFUNDED)}


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_mac(body, secret, ts)}"


def _mac(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body,
                    hashlib.sha256).hexdigest()


def notification_body(checkout: Mapping[str, Any], status: str, *,
                      amount: str | None = None, currency: str | None = None) -> bytes:
    """What the demo gateway sends for one checkout (tests pass another amount or currency)."""
    return json.dumps({
        "id": f"evt_{secrets.token_hex(8)}", "status": status,
        "checkout": checkout["gateway_id"], "reference": checkout["payment_id"],
        "amount": amount or checkout["amount"], "currency": currency or checkout["currency"],
    }).encode()


def read_token(token: str) -> dict[str, Any]:
    return dict(signing.loads(token, salt=TOKEN_SALT))


class DemoGateway:
    name = "demo"
    label = "Demo gateway"

    def configured(self) -> bool:
        return bool(settings.PAYMENTS_DEMO_ENABLED)

    def start_checkout(self, request: CheckoutRequest) -> Checkout:
        if not self.configured():
            raise GatewayError("the demo gateway is off (PAYMENTS_DEMO_ENABLED)")
        gateway_id = f"demo_{secrets.token_hex(10)}"
        token = signing.dumps({
            "gateway_id": gateway_id, "payment_id": request.payment_id,
            "amount": str(request.amount), "currency": request.currency,
            "description": request.description, "notify_url": request.notify_url,
            "return_url": request.return_url, "cancel_url": request.cancel_url,
        }, salt=TOKEN_SALT)
        return Checkout(redirect_url=reverse("demo_checkout", args=[token]),
                        gateway_id=gateway_id)

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        if not self.configured():
            raise BadSignature("the demo gateway is off")
        _verify(body, headers.get(HEADER, ""), settings.PAYMENTS_DEMO_SECRET)
        try:
            data = json.loads(body)
            amount = Decimal(str(data["amount"]))
        except (ValueError, KeyError, TypeError, InvalidOperation):
            raise BadSignature("signed, but not a demo notification") from None
        ref = str(data.get("reference", ""))
        return Notification(
            kind=STATUSES.get(str(data.get("status")), EventKind.IGNORED),
            event_id=str(data.get("id", "")), payment_id=int(ref) if ref.isdigit() else None,
            gateway_id=str(data.get("checkout", "")), amount=amount,
            currency=str(data.get("currency", "")).upper(), payload=data)

    def query_status(self, gateway_id: str) -> Notification | None:
        return None


def _verify(body: bytes, header: str, secret: str) -> None:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        raise BadSignature("no timestamp in the signature header") from None
    if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
        raise BadSignature("timestamp outside the tolerance zone")
    if not hmac.compare_digest(_mac(body, secret, timestamp), parts.get("v1", "")):
        raise BadSignature("signature does not match the body")
