"""The demo gateway's hosted-checkout page (see payments/gateways/demo.py): it stands where a
real gateway's page would, so it reads nothing of the panel's database and tells the panel
what happened only by a signed notification over HTTP, then sends the customer back.
"""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from payments.gateways import demo

log = logging.getLogger(__name__)
OUTCOMES = {"pay": "paid", "fail": "failed"}


@require_http_methods(["GET", "POST"])
def demo_checkout(request: HttpRequest, token: str) -> HttpResponse:
    if not settings.PAYMENTS_DEMO_ENABLED:
        raise Http404
    try:
        checkout = demo.read_token(token)
    except signing.BadSignature:
        raise Http404 from None
    if request.method == "POST":
        status = OUTCOMES.get(request.POST.get("outcome", ""))
        if status is None:
            return redirect(checkout["cancel_url"])
        notify(checkout, status)
        return redirect(checkout["return_url"])
    return render(request, "payments/demo_checkout.html", {"checkout": checkout})


def notify(checkout: dict[str, str], status: str) -> None:
    """Send the signed notification, as the gateway's servers would."""
    body = demo.notification_body(checkout, status)
    try:
        response = requests.post(
            checkout["notify_url"], data=body, timeout=(5, 20), allow_redirects=False,
            headers={"Content-Type": "application/json",
                     demo.HEADER: demo.sign(body, settings.PAYMENTS_DEMO_SECRET)})
        log.info("demo gateway notified %s: HTTP %s", checkout["notify_url"],
                 response.status_code)
    except requests.RequestException as exc:
        # A real gateway would retry later; the demo says so and the payment stays pending.
        log.warning("demo gateway could not notify %s: %s", checkout["notify_url"], exc)
