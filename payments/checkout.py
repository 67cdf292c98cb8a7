"""Starting a payment: the row first, then the gateway, never the network inside a
transaction.

A Payment is committed as `created` before the gateway is called, so a checkout the gateway
made is never without its row; the gateway's id is stored when it answers, and the payment
is `pending` from then until a verified notification says how it ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from panel.models import User
from payments.gateways import CheckoutRequest, GatewayError, get_gateway
from payments.models import Payment, PaymentMethod

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quote:
    """What a method makes of an amount typed: shown before paying, stored on the payment."""

    amount: Decimal
    fee: Decimal
    bonus: Decimal

    @property
    def total(self) -> Decimal:
        return self.amount + self.fee

    @property
    def credited(self) -> Decimal:
        return self.amount + self.bonus


def quote(method: PaymentMethod, amount: Decimal) -> Quote:
    return Quote(amount=amount, fee=method.fee_for(amount), bonus=method.bonus_for(amount))


@dataclass(frozen=True)
class Started:
    payment: Payment
    redirect_url: str  # the gateway's checkout, or '' (manual methods, a refused start)


def start_payment(user: User, method: PaymentMethod, amount: Decimal, *, reference: str = "",
                  site: str) -> Started:
    """Create the payment and ask its gateway for a checkout. `site` is the panel's own
    scheme and host as the customer reached it (https://panel.example.com): the gateway
    sends the customer back there and its notifications to the webhook."""
    q = quote(method, amount)
    payment = Payment.objects.create(
        user=user, method=method, gateway=method.gateway, amount=q.amount, fee=q.fee,
        bonus=q.bonus, currency=settings.PANEL_CURRENCY, customer_reference=reference)
    if method.is_manual:
        payment.mark(Payment.State.PENDING)
        payment.flag(f"manual payment to review: reference {reference!r}")
        return Started(payment, "")
    gateway = get_gateway(method.gateway)
    assert gateway is not None
    back = site + reverse("payment_detail", args=[payment.pk])
    try:
        checkout = gateway.start_checkout(CheckoutRequest(
            payment_id=payment.pk, amount=q.total, currency=payment.currency,
            description=_("Add funds: payment #%(id)s") % {"id": payment.pk},
            return_url=back, cancel_url=back,
            notify_url=site + reverse("payment_webhook", args=[method.gateway])))
    except GatewayError as exc:
        log.warning("payment %s: checkout refused: %s", payment.pk, exc)
        Payment.objects.filter(pk=payment.pk).update(error=str(exc)[:2000])
        payment.mark(Payment.State.FAILED)
        return Started(payment, "")
    Payment.objects.filter(pk=payment.pk).update(gateway_id=checkout.gateway_id)
    payment.gateway_id = checkout.gateway_id
    payment.mark(Payment.State.PENDING)
    return Started(payment, checkout.redirect_url)
