"""The customer's Add funds pages and the gateways' webhook.

The return page shows only what the database says: a payment is pending until a verified
notification (or the gateway's answer to a status query) moves it, whatever the URL the
customer's browser came back with.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from panel.models import User
from payments.checkout import quote, start_payment
from payments.forms import AddFundsForm
from payments.gateways import BadSignature, get_gateway
from payments.models import Payment, PaymentMethod
from payments.processing import apply_notification, check_with_gateway

log = logging.getLogger(__name__)
PER_PAGE = 20
POLL_SECONDS = 3


def _customer(request: HttpRequest) -> User:
    return cast(User, request.user)


def _get_payment_for_customer(request: HttpRequest, pk: int) -> Payment:
    payment = Payment.objects.filter(user_id=_customer(request).pk, pk=pk).select_related(
        "method").first()
    if payment is None:
        raise Http404
    return payment


def _chosen_method(request: HttpRequest, methods: list[PaymentMethod]) -> PaymentMethod | None:
    wanted = request.POST.get("method") or request.GET.get("method")
    return next((m for m in methods if str(m.pk) == wanted), methods[0] if methods else None)


@login_required
def add_funds(request: HttpRequest) -> HttpResponse:
    methods = list(PaymentMethod.objects.offered_to(_customer(request)))
    method = _chosen_method(request, methods)
    form = None if method is None else AddFundsForm(
        method, request.POST if request.method == "POST" else None)
    if request.method == "POST" and method is not None and form is not None and form.is_valid():
        return _start(request, method, form.cleaned_data["amount"],
                      form.cleaned_data.get("reference", ""))
    payments = Paginator(Payment.objects.filter(user=_customer(request)).select_related(
        "method"), PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "payments/add_funds.html", {
        "methods": methods, "method": method, "form": form, "page": payments,
        "page_query": f"method={method.pk}" if method else ""})


def _start(request: HttpRequest, method: PaymentMethod, amount: Decimal,
           reference: str) -> HttpResponse:
    site = request.build_absolute_uri("/").rstrip("/")
    started = start_payment(_customer(request), method, amount, reference=reference, site=site)
    if started.redirect_url:
        return redirect(started.redirect_url)
    if started.payment.state == Payment.State.FAILED:
        messages.error(request, _("The payment could not be started. Please try again or "
                                  "choose another method."))
    else:
        messages.success(request, _("Thank you: staff will check your payment and credit "
                                    "it once it has arrived."))
    return redirect("payment_detail", started.payment.pk)


@login_required
def add_funds_preview(request: HttpRequest) -> HttpResponse:
    methods = list(PaymentMethod.objects.offered_to(_customer(request)))
    method = _chosen_method(request, methods)
    try:
        amount = Decimal(request.GET.get("amount", "").strip().replace(",", "."))
    except InvalidOperation:
        amount = Decimal(0)
    context: dict[str, object] = {"method": method}
    if method is not None and amount.is_finite() and amount > 0:
        amount = amount.quantize(Decimal("0.01"))
        context.update(quote=quote(method, amount), error=method.amount_error(amount))
    return render(request, "payments/_preview.html", context)


@login_required
def payment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    payment = _get_payment_for_customer(request, pk)
    return render(request, "payments/payment_detail.html", {
        "payment": payment, "poll_seconds": POLL_SECONDS})


@login_required
def payment_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The part of the return page that polls itself while the payment is open."""
    payment = _get_payment_for_customer(request, pk)
    check_with_gateway(payment)
    payment.refresh_from_db()
    _customer(request).refresh_from_db(fields=["balance"])
    return render(request, "payments/_status.html", {
        "payment": payment, "poll_seconds": POLL_SECONDS, "oob_balance": True})


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, gateway: str) -> HttpResponse:
    """Where gateways send notifications. A bad signature is refused with 400 and leaves
    nothing but a log line; anything verified is applied and answered 200, so the gateway
    stops resending it."""
    found = get_gateway(gateway)
    if found is None or not found.configured():
        raise Http404
    try:
        notification = found.parse_notification(request.body, request.headers)
    except BadSignature as exc:
        log.warning("refused a %s notification from %s: %s", gateway,
                    request.META.get("REMOTE_ADDR"), exc)
        return HttpResponseBadRequest("bad signature")
    event = apply_notification(gateway, notification)
    log.info("%s notification %s: %s", gateway, notification.event_id, event.outcome)
    return HttpResponse("ok", content_type="text/plain")
