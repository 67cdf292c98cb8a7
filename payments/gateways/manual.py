"""Manual methods (a bank transfer, anything an admin describes): the customer says what they
sent and their reference; staff check their account and approve or reject. No checkout page
and no notifications: approval by staff (Payment.approve) is the only way such money comes in.
"""

from __future__ import annotations

from collections.abc import Mapping

from payments.gateways import BadSignature, Checkout, CheckoutRequest, GatewayError, Notification


class Manual:
    name = "manual"
    label = "Manual"

    def configured(self) -> bool:
        return True

    def start_checkout(self, request: CheckoutRequest) -> Checkout:
        raise GatewayError("a manual payment has no checkout; staff review it")

    def parse_notification(self, body: bytes, headers: Mapping[str, str]) -> Notification:
        raise BadSignature("manual methods receive no notifications")

    def query_status(self, gateway_id: str) -> Notification | None:
        return None
