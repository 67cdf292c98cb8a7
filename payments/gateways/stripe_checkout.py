"""Stripe Checkout through the official library: one Checkout Session per payment.

The webhook is verified by the library with the endpoint secret and its timestamp tolerance.
Sessions carry our payment id as client_reference_id; refunds and disputes name the charge's
PaymentIntent, which the completed session told us.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import stripe
from django.conf import settings

from payments.gateways import (
    BadSignature,
    Checkout,
    CheckoutRequest,
    EventKind,
    GatewayError,
    Notification,
    major_units,
    minor_units,
)

log = logging.getLogger(__name__)

SESSION_EVENTS = {
    "checkout.session.async_payment_succeeded": EventKind.PAID,
    "checkout.session.async_payment_failed": EventKind.FAILED,
    "checkout.session.expired": EventKind.EXPIRED,
}


class StripeCheckout:
    name = "stripe"
    label = "Stripe"

    def configured(self) -> bool:
        return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)

    def _client(self) -> stripe.StripeClient:
        http = stripe.RequestsClient(timeout=(settings.PAYMENTS_CONNECT_TIMEOUT,
                                              settings.PAYMENTS_READ_TIMEOUT))
        return stripe.StripeClient(
            settings.STRIPE_SECRET_KEY, http_client=http, max_network_retries=0,
            base_addresses={"api": settings.STRIPE_API_BASE})

    def start_checkout(self, request: CheckoutRequest) -> Checkout:
        params: Any = {
            "mode": "payment",
            "client_reference_id": str(request.payment_id),
            "metadata": {"payment_id": str(request.payment_id)},
            "line_items": [{"quantity": 1, "price_data": {
                "currency": request.currency.lower(),
                "unit_amount": minor_units(request.amount, request.currency),
                "product_data": {"name": request.description}}}],
            "success_url": request.return_url,
            "cancel_url": request.cancel_url,
        }
        try:
            # The idempotency key makes a retried start reuse the first session.
            session = self._client().v1.checkout.sessions.create(
                params=params, options={"idempotency_key": f"payment-{request.payment_id}"})
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe refused the checkout: {exc.user_message or exc}") from exc
        if not session.url:
            raise GatewayError("Stripe returned a session without a URL")
        return Checkout(redirect_url=session.url, gateway_id=session.id)

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        try:
            event = stripe.Webhook.construct_event(
                body, headers.get("Stripe-Signature"), settings.STRIPE_WEBHOOK_SECRET,
                tolerance=settings.STRIPE_WEBHOOK_TOLERANCE)
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise BadSignature(str(exc)) from exc
        obj = event["data"]["object"].to_dict()
        return _notification(event["type"], event["id"], obj)

    def query_status(self, gateway_id: str) -> Notification | None:
        try:
            session = self._client().v1.checkout.sessions.retrieve(gateway_id)
        except stripe.StripeError as exc:
            raise GatewayError(f"Stripe did not answer: {exc}") from exc
        return _notification("checkout.session.query", "", session.to_dict())


def _notification(event_type: str, event_id: str, obj: dict[str, Any]) -> Notification:
    if event_type.startswith("checkout.session."):
        return _session(event_type, event_id, obj)
    if event_type == "charge.refunded":
        return _charge_event(EventKind.REFUNDED, event_id, obj, "amount_refunded")
    if event_type == "charge.dispute.created":
        return _charge_event(EventKind.DISPUTED, event_id, obj, "amount")
    return Notification(kind=EventKind.IGNORED, event_id=event_id, payload=obj)


def _session(event_type: str, event_id: str, session: dict[str, Any]) -> Notification:
    if event_type in SESSION_EVENTS:
        kind = SESSION_EVENTS[event_type]
    elif session.get("status") == "expired":
        kind = EventKind.EXPIRED
    elif session.get("payment_status") in ("paid", "no_payment_required"):
        kind = EventKind.PAID
    else:
        # completed with a delayed method (bank debit): money is on its way, not here yet.
        kind = EventKind.PENDING
    currency = str(session.get("currency") or "").upper()
    amount = session.get("amount_total")
    ref = session.get("client_reference_id") or ""
    return Notification(
        kind=kind, event_id=event_id, payment_id=int(ref) if ref.isdigit() else None,
        gateway_id=str(session.get("id") or ""),
        intent_id=str(session.get("payment_intent") or ""),
        amount=None if amount is None else major_units(int(amount), currency),
        currency=currency, payload=session)


def _charge_event(kind: EventKind, event_id: str, obj: dict[str, Any],
                  amount_field: str) -> Notification:
    currency = str(obj.get("currency") or "").upper()
    amount = obj.get(amount_field)
    return Notification(
        kind=kind, event_id=event_id, intent_id=str(obj.get("payment_intent") or ""),
        amount=None if amount is None else major_units(int(amount), currency),
        currency=currency, payload=obj)
