"""The customer's New order page (the home page once logged in), its service search and live
charge, and the Mass order page.

The charge shown while the customer types comes from orders.placing.quote(), the function
place_order() charges with, so the two cannot disagree. Every sent form carries a one-time
token (FormSubmission) taken in the transaction that places its orders, so a double click or
a reload places nothing twice.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from orders import pricing
from orders.errors import BAD_REQUEST, INCORRECT_SERVICE, NOT_ENOUGH_FUNDS, Refusal
from orders.models import Category, CustomRate, FormSubmission, Order, Service
from orders.params import DATE, NUMBER, TYPE_SPECS, TypeField, TypeSpec, parse_id
from orders.placing import Quote, place_mass_order, place_order, quote
from panel import views as panel_views
from panel.models import User

SEARCH_LIMIT = 30  # options the service search returns at most
LATEST_ORDERS = 5  # beside the form
MAX_MASS_LINES = 1000
CATEGORY_SESSION = "new_order_category"  # the category the customer last picked
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


class AlreadySubmitted(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("form already submitted")
        self.result = result


def _customer(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User), "view must be behind @login_required"
    return user


# --- the catalog as this customer sees it -----------------------------------------------------


def _service_for_customer(service_id: object) -> Service | None:
    """An enabled service with its routes and category, or None (unknown ids look the same)."""
    pk = parse_id(service_id)
    if pk is None:
        return None
    return Service.objects.enabled().with_routes().filter(pk=pk).first()


def _custom_rates(user: User, service_ids: list[int]) -> dict[int, Decimal]:
    return dict(CustomRate.objects.filter(user=user, service_id__in=service_ids)
                .values_list("service_id", "rate"))


@dataclass(frozen=True)
class PricedService:
    service: Service
    rate: Decimal | None  # this customer's price per 1000 (per package: flat types)

    @property
    def is_flat(self) -> bool:
        return pricing.is_flat(self.service.type)


def _priced(user: User, services: list[Service]) -> list[PricedService]:
    rates = _custom_rates(user, [s.pk for s in services])
    return [PricedService(s, pricing.customer_rate(s, user, rates)) for s in services]


def _categories() -> QuerySet[Category]:
    return Category.objects.filter(
        Exists(Service.objects.filter(category=OuterRef("pk"), enabled=True)), enabled=True)


def search_services(query: str, category_id: int | None) -> QuerySet[Service]:
    """Enabled services whose name holds `query` or whose id is it, the exact id first; in
    one category when given. Callers slice it: the catalog may hold thousands."""
    services = Service.objects.enabled().with_routes()
    if category_id is not None:
        services = services.filter(category_id=category_id)
    if query:
        number = parse_id(query.lstrip("#"))
        match = Q(name__icontains=query)
        if number is not None:
            match |= Q(pk=number)
        services = services.filter(match).annotate(exact=Case(
            When(pk=number or 0, then=Value(0)), default=Value(1), output_field=IntegerField(),
        )).order_by("exact", "category__position", "position", "id")
    return services


def _remember_category(request: HttpRequest, category_id: int | None) -> None:
    """None is "all categories", remembered too. Written only when it changes: every write
    is a session UPDATE."""
    if request.session.get(CATEGORY_SESSION) != category_id:
        request.session[CATEGORY_SESSION] = category_id


def _asked_category(request: HttpRequest) -> int | None:
    """The category in the query string when it names one ("" is all), else the last one
    the customer picked."""
    if "category" in request.GET:
        return parse_id(request.GET["category"])
    remembered = request.session.get(CATEGORY_SESSION)
    return remembered if isinstance(remembered, int) else None


@dataclass(frozen=True)
class SearchResult:
    options: list[PricedService]
    query: str
    more: bool  # matches beyond SEARCH_LIMIT were left out
    searched: bool  # a query or a category was given


def _search(user: User, query: str, category_id: int | None) -> SearchResult:
    if not query and category_id is None:
        return SearchResult([], query, more=False, searched=False)
    found = list(search_services(query, category_id)[:SEARCH_LIMIT + 1])
    return SearchResult(_priced(user, found[:SEARCH_LIMIT]), query,
                        more=len(found) > SEARCH_LIMIT, searched=True)


@require_safe
@login_required
def service_search(request: HttpRequest) -> HttpResponse:
    """The htmx listbox of at most SEARCH_LIMIT services matching `q` in `category`."""
    category_id = _asked_category(request)
    _remember_category(request, category_id)
    result = _search(_customer(request), request.GET.get("q", "").strip()[:100], category_id)
    return render(request, "orders/customer/_service_options.html", {"search": result})


# --- the form's fields, from orders/params.py's table -----------------------------------------


@dataclass(frozen=True)
class FormField:
    spec: TypeField
    value: str
    error: str
    low: int | None
    high: int | None

    @property
    def input_id(self) -> str:
        return f"id_{self.spec.name}"


def _fields_of(service: Service) -> tuple[TypeField, ...]:
    return tuple(f for f in TYPE_SPECS[service.type].fields if service.dripfeed or not f.dripfeed)


def _form_fields(service: Service, values: Mapping[str, str],
                 errors: Mapping[str, str]) -> list[FormField]:
    fields = []
    for spec in _fields_of(service):
        low, high = ((service.min_quantity, service.max_quantity) if spec.bounded_by_service
                     else (spec.low, spec.high))
        if spec.kind != NUMBER:
            low, high = (None, None) if spec.bounded_by_service else (None, spec.high)
        fields.append(FormField(spec, values.get(spec.name, ""), errors.get(spec.name, ""),
                                low, high))
    return fields


def _order_params(service: Service, data: QueryDict) -> dict[str, str]:
    """The form's values as API v2 parameters of the service's type."""
    params = {}
    for spec in _fields_of(service):
        value = data.get(spec.name, "")
        iso = _ISO_DATE.fullmatch(value.strip()) if spec.kind == DATE else None
        if iso is not None:  # <input type=date> sends Y-m-d; API v2 takes d/m/Y
            value = f"{iso[3]}/{iso[2]}/{iso[1]}"
        params[spec.name] = value
    return params


# --- the New order page ----------------------------------------------------------------------


def _add_funds_url() -> str:
    """Where to add funds, once a page for it exists (another part of the panel builds it)."""
    for name in ("add_funds", "transactions"):
        try:
            return reverse(name)
        except NoReverseMatch:
            continue
    return ""


@dataclass(frozen=True)
class ServiceCard:
    priced: PricedService
    average: timedelta | None
    spec: TypeSpec

    @property
    def charged_text(self) -> str:
        return _(self.spec.charged)

    @property
    def average_text(self) -> str:
        if self.average is None:
            return ""
        minutes = max(round(self.average.total_seconds() / 60), 1)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        parts = [(days, _("%d d")), (hours, _("%d h")), (minutes, _("%d min"))]
        return " ".join(text % amount for amount, text in parts if amount)[:40]


def _card(user: User, service: Service) -> ServiceCard:
    [priced] = _priced(user, [service])
    return ServiceCard(priced, Order.objects.average_completion(service),
                       TYPE_SPECS[service.type])


def _page(request: HttpRequest, user: User, service: Service | None, *,
          values: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None,
          top_error: str = "", placed: int | None = None, already: dict[str, Any] | None = None,
          status: int = 200) -> HttpResponse:
    if service is not None:
        _remember_category(request, service.category_id)
        category_id: int | None = service.category_id
    else:
        category_id = _asked_category(request)
        _remember_category(request, category_id)
    query = request.GET.get("q", "").strip()[:100]
    context = {
        "categories": list(_categories()),
        "category_id": category_id,
        "query": query,
        "search": _search(user, query, category_id) if service is None else None,
        "card": _card(user, service) if service is not None else None,
        "fields": _form_fields(service, values or {}, errors or {}) if service else [],
        "dripfeed_values": bool(values and (values.get("runs") or values.get("interval"))),
        "top_error": top_error,
        "short_funds": top_error == NOT_ENOUGH_FUNDS,
        "placed": placed,
        "already_sent": already is not None,
        "already": (already or {}).get("order"),
        "token": uuid.uuid4(),
        "balance": user.balance,
        "latest_orders": list(Order.objects.for_customer(user.pk).select_related("service")
                              [:LATEST_ORDERS]),
        "add_funds_url": _add_funds_url(),
    }
    return render(request, "orders/customer/new_order.html", context, status=status)


@require_http_methods(["GET", "HEAD", "POST"])
def new_order(request: HttpRequest) -> HttpResponse:
    """`/`: the New order page for a customer; the landing page for anybody else."""
    if not request.user.is_authenticated:
        return panel_views.home(request)
    user = _customer(request)
    if request.method == "POST":
        return _submit(request, user)
    asked = request.GET.get("service", "")
    service = _service_for_customer(asked) if asked else None
    return _page(request, user, service, top_error=INCORRECT_SERVICE if asked and not service
                 else "")


def _claim(token: uuid.UUID, user: User) -> None:
    """Take the form's one-time token inside the caller's transaction, or raise
    AlreadySubmitted with what the first submission placed. A second request with the same
    token waits on the primary key until the first commits or rolls back."""
    try:
        with transaction.atomic():
            FormSubmission.objects.create(token=token, user=user)
    except IntegrityError:
        result = (FormSubmission.objects.filter(token=token, user=user)
                  .values_list("result", flat=True).first())
        raise AlreadySubmitted(result or {}) from None


def _token(data: QueryDict) -> uuid.UUID | None:
    try:
        return uuid.UUID(data.get("token", ""))
    except ValueError:
        return None


def _submit(request: HttpRequest, user: User) -> HttpResponse:
    service = _service_for_customer(request.POST.get("service", ""))
    values = request.POST.dict()
    if service is None:
        return _page(request, user, None, top_error=INCORRECT_SERVICE, status=400)
    token = _token(request.POST)
    if token is None:
        return _page(request, user, service, values=values, top_error=BAD_REQUEST, status=400)
    params = _order_params(service, request.POST)
    try:
        with transaction.atomic():
            _claim(token, user)
            order = place_order(user, service.pk, params)
            FormSubmission.objects.filter(token=token).update(result={"order": order.pk})
    except AlreadySubmitted as taken:
        return _page(request, user, service, already=taken.result)
    except Refusal as refusal:
        field_names = {f.name for f in _fields_of(service)}
        if refusal.field in field_names:
            return _page(request, user, service, values=values,
                         errors={refusal.field: refusal.message}, status=400)
        return _page(request, user, service, values=values, top_error=refusal.message,
                     status=400)
    user.refresh_from_db(fields=["balance"])
    return _page(request, user, service, placed=order.pk)


# --- the live charge -------------------------------------------------------------------------


@require_POST
@login_required
def order_charge(request: HttpRequest) -> HttpResponse:
    """The charge fragment for the form as it stands, from the quote place_order charges."""
    user = _customer(request)
    service = _service_for_customer(request.POST.get("service", ""))
    context: dict[str, Any] = {"balance": user.balance, "add_funds_url": _add_funds_url()}
    if service is None:
        context["problem"] = INCORRECT_SERVICE
        return render(request, "orders/customer/_charge.html", context)
    params = _order_params(service, request.POST)
    try:
        offer: Quote = quote(user, service.pk, params)
    except Refusal as refusal:
        context.update(_charge_problem(service, params, refusal))
        return render(request, "orders/customer/_charge.html", context)
    context.update(offer=offer, short=offer.charge > user.balance,
                   short_message=NOT_ENOUGH_FUNDS)
    return render(request, "orders/customer/_charge.html", context)


def _charge_problem(service: Service, params: Mapping[str, str],
                    refusal: Refusal) -> dict[str, str]:
    """Why there is no charge yet, in words that name the field: an empty required field is
    no mistake while the customer is still typing."""
    labels = {f.name: _(f.label) for f in _fields_of(service)}
    if refusal.field in labels:
        label = labels[refusal.field]
        if not params.get(refusal.field, "").strip():
            return {"incomplete": _("Fill in “%(field)s” to see the charge.") % {"field": label}}
        return {"problem": f"{label}: {refusal.message}"}
    return {"problem": refusal.message}


# --- the Mass order page ---------------------------------------------------------------------


def _mass_lines(text: str) -> int:
    # Split as place_mass_order splits (str.splitlines() would also split on \f and more).
    return sum(1 for line in text.replace("\r\n", "\n").split("\n") if line.strip())


def _mass_result(lines: list[Any]) -> dict[str, Any]:
    return {"lines": [{"number": line.number, "text": line.text[:300],
                       "order": line.order.pk if line.order else None, "error": line.error}
                      for line in lines]}


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def mass_order(request: HttpRequest) -> HttpResponse:
    user = _customer(request)
    context: dict[str, Any] = {"max_lines": MAX_MASS_LINES, "text": "", "error": ""}
    if request.method == "POST":
        context.update(_place_mass(request, user))
    context["token"] = uuid.uuid4()
    status = 400 if context["error"] else 200
    return render(request, "orders/customer/mass_order.html", context, status=status)


def _place_mass(request: HttpRequest, user: User) -> dict[str, Any]:
    text = request.POST.get("orders", "")
    token = _token(request.POST)
    count = _mass_lines(text)
    if token is None:
        return {"text": text, "error": BAD_REQUEST}
    if count == 0:
        return {"text": text, "error": _("Write at least one order, one per line.")}
    if count > MAX_MASS_LINES:
        return {"text": text, "error": _(
            "At most %(max)d lines per mass order; this one has %(count)d.")
            % {"max": MAX_MASS_LINES, "count": count}}
    try:
        with transaction.atomic():
            _claim(token, user)
            result = _mass_result(place_mass_order(user, text, MAX_MASS_LINES))
            FormSubmission.objects.filter(token=token).update(result=result)
    except AlreadySubmitted as taken:
        return {"results": taken.result.get("lines", []), "already": True}
    lines = result["lines"]
    return {"results": lines, "placed": sum(1 for line in lines if line["order"]),
            "failed": sum(1 for line in lines if not line["order"])}
