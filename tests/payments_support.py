"""Helpers of the payment tests: methods, and notifications signed exactly as each gateway
signs them (Stripe's library's own scheme, NOWPayments' HMAC-SHA512, the demo gateway's)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import stripe

from payments.gateways import demo, nowpayments

STRIPE_KEY = "sk_test_panel"
STRIPE_SECRET = "whsec_test_panel"
NOW_KEY = "np-test-key"
NOW_SECRET = "np-ipn-secret"
SITE = "http://testserver"


def make_method(gateway: str, **fields: Any) -> Any:
    from payments.models import PaymentMethod

    values = {"name": gateway.title(), "gateway": gateway, "min_amount": Decimal("1"),
              "max_amount": Decimal("1000"), **fields}
    return PaymentMethod.objects.create(**values)


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str = "evt_1") -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "api_version": "2024-06-20", "data": {"object": obj}}).encode()


def stripe_session(payment: Any, *, status: str = "complete", payment_status: str = "paid",
                   amount: int | None = None, currency: str = "usd") -> dict[str, Any]:
    return {"id": payment.gateway_id, "object": "checkout.session",
            "client_reference_id": str(payment.pk), "status": status,
            "payment_status": payment_status, "payment_intent": f"pi_{payment.pk}",
            "amount_total": int(payment.total * 100) if amount is None else amount,
            "currency": currency}


def post_stripe(client: Any, body: bytes, *, secret: str = STRIPE_SECRET,
                timestamp: int | None = None) -> Any:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=timestamp or int(time.time()))
    return client.post("/payments/webhook/stripe/", data=body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=header)


def now_ipn(payment: Any, status: str, **fields: Any) -> dict[str, Any]:
    return {"payment_id": 5077125051, "invoice_id": int(payment.gateway_id),
            "payment_status": status, "pay_address": "0xabc", "price_amount": float(payment.total),
            "price_currency": "usd", "pay_amount": 0.0025, "actually_paid": 0.0025,
            "pay_currency": "btc", "order_id": str(payment.pk), "order_description": "x",
            "outcome_amount": 0.0024, "outcome_currency": "btc", **fields}


def post_now(client: Any, data: dict[str, Any], *, secret: str = NOW_SECRET) -> Any:
    body = json.dumps(data).encode()
    return client.post("/payments/webhook/nowpayments/", data=body,
                       content_type="application/json",
                       HTTP_X_NOWPAYMENTS_SIG=nowpayments.signature(data, secret))


def post_demo(client: Any, checkout: dict[str, Any], status: str, **fields: Any) -> Any:
    body = demo.notification_body(checkout, status, **fields)
    return client.post("/payments/webhook/demo/", data=body, content_type="application/json",
                       HTTP_DEMO_SIGNATURE=demo.sign(body, "demo-gateway-secret"))

