"""The customer's API page: their keys and the API v2 reference (templates/panel/api.html).

The reference lives in orders because it is made from orders' own tables: the parameters of
`add` for each service type come from orders/params.py (SERVICE_TYPE_SPECS), the same table
that validates an order, so the page cannot drift from what the API accepts. Creating and
revoking keys stays in panel/views.py, whose data they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from orders import errors
from orders.params import SERVICE_TYPE_SPECS
from panel.models import ApiKey, User
from panel.views import MAX_ACTIVE_API_KEYS, NEW_KEY_SESSION, ApiKeyForm


@dataclass(frozen=True)
class ParamDoc:
    name: str
    description: str
    optional: bool = False


@dataclass(frozen=True)
class ActionDoc:
    anchor: str
    title: str
    action: str
    params: tuple[ParamDoc, ...]  # besides key and action
    example: Any  # the example reply of api-v2.md

    @property
    def example_json(self) -> str:
        return json.dumps(self.example, indent=2, ensure_ascii=False)


_ORDER_IDS = ParamDoc("orders", "Order IDs (separated by a comma, up to 100 IDs)")


def action_docs(currency: str) -> tuple[ActionDoc, ...]:
    """Every action with its parameters and the example reply of api-v2.md."""
    status = {"charge": "0.27819", "start_count": "3572", "status": "Partial", "remains": "157",
              "currency": currency}
    return (
        ActionDoc("services", "Service list", "services", (), [
            {"service": 1, "name": "Followers", "type": "Default", "category": "First Category",
             "rate": "0.90", "min": "50", "max": "10000", "refill": True, "cancel": True},
            {"service": 2, "name": "Comments", "type": "Custom Comments",
             "category": "Second Category", "rate": "8", "min": "10", "max": "1500",
             "refill": False, "cancel": True},
        ]),
        # The type's own parameters follow `service`: orders.params.SERVICE_TYPE_SPECS.
        ActionDoc("add", "Add order", "add", (ParamDoc("service", "Service ID"),),
                  {"order": 23501}),
        ActionDoc("status", "Order status", "status", (ParamDoc("order", "Order ID"),), status),
        ActionDoc("status-multiple", "Multiple orders status", "status", (_ORDER_IDS,), {
            "1": status, "10": {"error": "Incorrect order ID"},
            "100": {"charge": "1.44219", "start_count": "234", "status": "In progress",
                    "remains": "10", "currency": currency},
        }),
        ActionDoc("refill", "Create refill", "refill", (ParamDoc("order", "Order ID"),),
                  {"refill": "1"}),
        ActionDoc("refill-multiple", "Create multiple refill", "refill", (_ORDER_IDS,), [
            {"order": 1, "refill": 1}, {"order": 2, "refill": 2},
            {"order": 3, "refill": {"error": "Incorrect order ID"}},
        ]),
        ActionDoc("refill-status", "Get refill status", "refill_status",
                  (ParamDoc("refill", "Refill ID"),), {"status": "Completed"}),
        ActionDoc("refill-status-multiple", "Get multiple refill status", "refill_status",
                  (ParamDoc("refills", "Refill IDs (separated by a comma, up to 100 IDs)"),), [
            {"refill": 1, "status": "Completed"}, {"refill": 2, "status": "Rejected"},
            {"refill": 3, "status": {"error": "Refill not found"}},
        ]),
        ActionDoc("cancel", "Create cancel", "cancel", (_ORDER_IDS,), [
            {"order": 9, "cancel": {"error": "Incorrect order ID"}}, {"order": 2, "cancel": 1},
        ]),
        ActionDoc("balance", "User balance", "balance", (),
                  {"balance": "100.84292", "currency": currency}),
    )


API_ERRORS: tuple[str, ...] = (
    errors.INVALID_KEY,
    errors.BAD_REQUEST,
    errors.INCORRECT_SERVICE,
    errors.INCORRECT_ORDER,
    errors.BAD_LINK,
    errors.NOT_ENOUGH_FUNDS,
    errors.quantity_below(50),
    errors.quantity_above(10000),
    errors.REFILL_NOT_FOUND,
    errors.NOT_ELIGIBLE_REFILL,
    errors.NOT_ELIGIBLE_CANCEL,
    errors.ACTIVE_LINK,
    errors.TOO_MANY,
)


@never_cache  # the one response that shows a new raw key must not stay in any cache
@login_required
def api_docs(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User), "view must be behind @login_required"
    keys = list(ApiKey.objects.active().filter(user=user))
    context = {
        "endpoint": request.build_absolute_uri("/api/v2"),
        "keys": keys,
        "max_keys": MAX_ACTIVE_API_KEYS,
        "at_key_limit": len(keys) >= MAX_ACTIVE_API_KEYS,
        "new_key": request.session.pop(NEW_KEY_SESSION, None),
        "form": ApiKeyForm(),
        "actions": action_docs(settings.PANEL_CURRENCY),
        "service_types": SERVICE_TYPE_SPECS,
        "errors": API_ERRORS,
        "max_ids": 100,
        "rate_limit_per_key": settings.API_RATE_LIMIT_PER_KEY,
        "rate_limit_per_ip": settings.API_RATE_LIMIT_PER_IP,
    }
    return render(request, "panel/api.html", context)
