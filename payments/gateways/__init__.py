"""The one small interface every payment gateway offers, and the registry of them.

A gateway knows its own wire format and nothing of the panel's models: it gets a plain
CheckoutRequest and returns where to send the customer; it turns a notification's raw body
and headers into a typed Notification only after verifying its signature (BadSignature
otherwise); and it may answer a status query with the same typed Notification. Amounts are
always in major units (10.50), currencies upper-case.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


class BadSignature(Exception):
    """The notification is not provably from the gateway: refuse it and write nothing."""


class GatewayError(Exception):
    """The gateway refused or did not answer a call we made (start a checkout, a query)."""


class EventKind(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    PARTIALLY_PAID = "partially_paid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    IGNORED = "ignored"  # verified, but nothing we act on (an event type we did not ask for)


@dataclass(frozen=True)
class CheckoutRequest:
    payment_id: int
    amount: Decimal  # what the customer pays, fee included
    currency: str
    description: str
    return_url: str
    cancel_url: str
    notify_url: str


@dataclass(frozen=True)
class Checkout:
    redirect_url: str
    gateway_id: str


@dataclass(frozen=True)
class Notification:
    """One verified message from a gateway, about one payment."""

    kind: EventKind
    event_id: str = ""
    payment_id: int | None = None  # ours, echoed back by the gateway
    gateway_id: str = ""
    # A second id some gateways name the payment by later (Stripe's PaymentIntent, which
    # refunds and disputes refer to).
    intent_id: str = ""
    amount: Decimal | None = None  # what arrived, in major units
    currency: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)


class Gateway(Protocol):
    name: str
    label: str

    def configured(self) -> bool: ...

    def start_checkout(self, request: CheckoutRequest) -> Checkout: ...

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification: ...

    def query_status(self, gateway_id: str) -> Notification | None: ...


def get_gateway(name: str) -> Gateway | None:
    """The gateway of that name, or None for an unknown one."""
    from payments.gateways import demo, manual, nowpayments, stripe_checkout

    gateways: dict[str, Gateway] = {
        "stripe": stripe_checkout.StripeCheckout(),
        "nowpayments": nowpayments.NowPayments(),
        "manual": manual.Manual(),
        "demo": demo.DemoGateway(),
    }
    return gateways.get(name)


def minor_units(amount: Decimal, currency: str) -> int:
    """10.50 USD → 1050; zero-decimal currencies (JPY…) stay as they are."""
    return int(amount) if currency.upper() in ZERO_DECIMAL else int(amount * 100)


def major_units(amount: int, currency: str) -> Decimal:
    return Decimal(amount) if currency.upper() in ZERO_DECIMAL else Decimal(amount) / 100


# Stripe's list of currencies without minor units.
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
                          "UGX", "VND", "VUV", "XAF", "XOF", "XPF"})
