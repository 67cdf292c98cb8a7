"""NOWPayments, the crypto processor: its invoice API through a thin requests client, and its
IPN, signed with HMAC-SHA512 over the JSON body with sorted keys, keyed by the IPN secret.

The customer pays in a coin of their choice; the invoice is priced in the panel's currency.
What we credit is the share of the asked coin amount that actually arrived, times the price:
a `partially_paid` IPN credits what arrived, never what was asked.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

import requests
from django.conf import settings

from payments.gateways import (
    BadSignature,
    Checkout,
    CheckoutRequest,
    EventKind,
    GatewayError,
    Notification,
)

STATUSES = {
    "waiting": EventKind.PENDING,
    "confirming": EventKind.PENDING,
    "confirmed": EventKind.PENDING,
    "sending": EventKind.PENDING,
    "finished": EventKind.PAID,
    "partially_paid": EventKind.PARTIALLY_PAID,
    "failed": EventKind.FAILED,
    "expired": EventKind.EXPIRED,
    "refunded": EventKind.REFUNDED,
}
CENT = Decimal("0.01")


def signature(body: Mapping[str, Any], secret: str) -> str:
    """NOWPayments' IPN signature: HMAC-SHA512 of the body re-serialised with sorted keys."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hmac.new(secret.encode(), canonical.encode(), hashlib.sha512).hexdigest()


class NowPayments:
    name = "nowpayments"
    label = "NOWPayments"

    def configured(self) -> bool:
        return bool(settings.NOWPAYMENTS_API_KEY and settings.NOWPAYMENTS_IPN_SECRET)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = requests.request(
                method, f"{settings.NOWPAYMENTS_API_URL.rstrip('/')}/{path}",
                headers={"x-api-key": settings.NOWPAYMENTS_API_KEY},
                timeout=(settings.PAYMENTS_CONNECT_TIMEOUT, settings.PAYMENTS_READ_TIMEOUT),
                allow_redirects=False, **kwargs)
            data = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise GatewayError(f"NOWPayments did not answer: {exc}") from exc
        if response.status_code >= 300 or not isinstance(data, dict):
            raise GatewayError(f"NOWPayments refused: HTTP {response.status_code} {data}")
        return data

    def start_checkout(self, request: CheckoutRequest) -> Checkout:
        data = self._call("POST", "invoice", json={
            "price_amount": str(request.amount),
            "price_currency": request.currency.lower(),
            "order_id": str(request.payment_id),
            "order_description": request.description,
            "ipn_callback_url": request.notify_url,
            "success_url": request.return_url,
            "cancel_url": request.cancel_url,
        })
        if not data.get("invoice_url") or not data.get("id"):
            raise GatewayError(f"NOWPayments returned no invoice: {data}")
        return Checkout(redirect_url=str(data["invoice_url"]), gateway_id=str(data["id"]))

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        given = headers.get("x-nowpayments-sig", "")
        try:
            data = json.loads(body)
        except ValueError:
            raise BadSignature("body is not JSON") from None
        if not isinstance(data, dict) or not given or not hmac.compare_digest(
                signature(data, settings.NOWPAYMENTS_IPN_SECRET), given):
            raise BadSignature("x-nowpayments-sig does not match the body")
        return _notification(data)

    def query_status(self, gateway_id: str) -> Notification | None:
        # Statuses are per payment, not per invoice, and the invoice's payment id is only
        # known from an IPN: the IPN is the source of truth here.
        return None


def _notification(data: dict[str, Any]) -> Notification:
    status = str(data.get("payment_status", ""))
    kind = STATUSES.get(status, EventKind.IGNORED)
    order_id = str(data.get("order_id") or "")
    return Notification(
        kind=kind,
        # One IPN per status change of one payment: replays of it share this id.
        event_id=f"{data.get('payment_id')}:{status}",
        payment_id=int(order_id) if order_id.isdigit() else None,
        gateway_id=str(data.get("invoice_id") or ""),
        intent_id=str(data.get("payment_id") or ""),
        amount=_arrived(data, kind), currency=str(data.get("price_currency") or "").upper(),
        payload=data)


def _arrived(data: dict[str, Any], kind: EventKind) -> Decimal | None:
    """The price's share that arrived: price × actually_paid / pay_amount, never above the
    price, rounded down to the cent."""
    try:
        price = Decimal(str(data["price_amount"]))
        if kind is not EventKind.PARTIALLY_PAID:
            return price
        asked, paid = Decimal(str(data["pay_amount"])), Decimal(str(data["actually_paid"]))
    except (KeyError, InvalidOperation):
        return None
    if asked <= 0 or paid <= 0:
        return Decimal(0)
    return min(price, price * paid / asked).quantize(CENT, rounding=ROUND_DOWN)
