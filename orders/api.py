"""The panel's own API v2 (../shared/api-v2.md), for resellers and scripts.

One plain view: read the parameters however the client sent them, authenticate the key,
dispatch to one small function per action. Every reply is JSON with HTTP 200, errors
included, because API v2 clients read the body and drop replies with other codes.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from orders import cancels, pricing, refills
from orders.errors import (
    BAD_REQUEST,
    INCORRECT_ORDER,
    INVALID_KEY,
    REFILL_NOT_FOUND,
    TOO_MANY,
    Refusal,
)
from orders.models import Refill, Service, api_statuses
from orders.params import parse_id
from orders.placing import new_request_id, place_order, request_id
from panel.models import ApiKey, User
from panel.money import format_money

log = logging.getLogger(__name__)

MAX_IDS = 100

Params = Mapping[str, str]
Reply = dict[str, Any] | list[Any]


# Replies without spaces: clients parse them, and a batch `status` is a tenth smaller.
COMPACT = {"separators": (",", ":")}


def api_error(message: str) -> JsonResponse:
    return JsonResponse({"error": message}, json_dumps_params=COMPACT)


class ApiV2Middleware:
    """Answers API v2 calls straight after SecurityMiddleware (HTTPS redirect, HSTS,
    nosniff), past the rest of the site's stack: sessions, CSRF, messages, accounts, time
    zones, CSP and lock-out serve pages and browsers, and cost an API call a third of its
    time. The host is still checked against ALLOWED_HOSTS, as CommonMiddleware would."""

    PATHS = frozenset({"/api/v2", "/api/v2/"})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info not in self.PATHS:
            return self.get_response(request)
        request.get_host()  # DisallowedHost (a 400) for a host not served here
        return api_v2(request)


@csrf_exempt
def api_v2(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    user, action, outcome, reply = None, "", "ok", None
    rid = new_request_id(request.headers.get("X-Request-ID", ""))
    token = request_id.set(rid)
    try:
        params = _read_params(request)
        action = params.get("action", "")[:30]
        _limit(f"ip:{client_address(request)}", settings.API_RATE_LIMIT_PER_IP)
        key = _authenticate(params.get("key", ""))
        user = key.user
        _limit(f"key:{key.pk}", settings.API_RATE_LIMIT_PER_KEY)
        handler = ACTIONS.get(action)
        if handler is None:
            raise Refusal(BAD_REQUEST)
        reply = handler(user, params)
        response = JsonResponse(reply, safe=False, json_dumps_params=COMPACT)
    except Refusal as exc:
        outcome = exc.message
        response = api_error(exc.message)
    except Exception:  # no input may produce a 500: clients would drop the reply
        log.exception("api v2: unexpected failure in %r", action)
        outcome = "internal error"
        response = api_error(BAD_REQUEST)
    finally:
        request_id.reset(token)
        _log_call(rid, user, action, outcome, reply, started)
    response["X-Request-ID"] = rid  # for the client's report of a problem
    return response


def _log_call(rid: str, user: User | None, action: str, outcome: str, reply: Reply | None,
              started: float) -> None:
    """One line per call, as key=value pairs and, for a JSON log, as fields."""
    order = reply.get("order") if action == "add" and isinstance(reply, dict) else None
    fields = {"request_id": rid, "customer": user.pk if user else None,
              "api_action": action or None, "outcome": outcome, "order": order,
              "duration_ms": round((time.monotonic() - started) * 1000)}
    log.info("api v2 request_id=%s customer=%s action=%s outcome=%s%s duration_ms=%d", rid,
             user.pk if user else "-", action or "-", outcome,
             f" order={order}" if order is not None else "", fields["duration_ms"],
             extra=fields)


def _read_params(request: HttpRequest) -> dict[str, str]:
    """Form body, JSON body or query string; a repeated parameter counts once (the last)."""
    try:
        if request.content_type == "application/json" and request.body:
            data = json.loads(request.body)
            if not isinstance(data, dict):
                raise Refusal(BAD_REQUEST)
            return {str(k): _scalar(v) for k, v in data.items()}
        source = request.POST if request.method == "POST" else request.GET
        merged = {**request.GET.dict(), **source.dict()}
    # RecursionError: JSON nested too deep for the decoder; MultiPartParserError: a
    # multipart body without a usable boundary. Both are the client's error, not ours.
    except (RequestDataTooBig, TooManyFieldsSent, MultiPartParserError, RecursionError,
            ValueError, UnicodeDecodeError):
        raise Refusal(BAD_REQUEST) from None
    return {k: v for k, v in merged.items() if isinstance(v, str)}


def client_address(request: HttpRequest) -> str:
    """The caller's address. Behind TRUSTED_PROXY_COUNT reverse proxies it is the entry that
    many places from the right of X-Forwarded-For (entries further left are whatever the
    client wrote); without proxies, or with a short header, the socket's peer."""
    peer = str(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return peer
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [h for h in hops if h]
    return hops[-proxies] if len(hops) >= proxies else peer


def _scalar(value: object) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)  # a JSON list of comments or usernames
    return "" if value is None else str(value)


def _limit(bucket: str, per_minute: int) -> None:
    """A fixed one-minute window in the shared cache (Redis), so every web worker counts."""
    if per_minute <= 0:
        return
    if _count(f"api-rate:{bucket}:{int(time.time() // 60)}") > per_minute:
        raise Refusal(TOO_MANY)


def _count(name: str) -> int:
    """Count one more call in this window. With Redis it is one pipelined round trip (the
    cache API's add-then-incr costs three), in the cache's own keys, so cache.clear() resets
    it; without Redis (the demo) the local cache counts per process. While Redis is down
    calls are not counted: a limit that refused everything would be an outage of its own."""
    key = cache.make_key(name)
    client = _redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        try:
            return int(pipe.execute()[0])
        except redis.RedisError as exc:  # Redis restarting: serve, as without a limit
            log.warning("api v2: rate limit not counted (%s)", exc)
            return 0
    cache.add(name, 0, timeout=120)
    try:
        return cache.incr(name)
    except ValueError:  # expired between add and incr
        return 1


@functools.cache
def _redis() -> redis.Redis | None:
    """The cache's Redis server, if the cache is Redis."""
    config = settings.CACHES["default"]
    if config["BACKEND"] != "django.core.cache.backends.redis.RedisCache":
        return None
    return redis.Redis.from_url(config["LOCATION"])


def _authenticate(raw_key: str) -> ApiKey:
    key = ApiKey.objects.authenticate(raw_key)
    if key is None:
        raise Refusal(INVALID_KEY)
    key.touch()
    return key


def _ids(text: str) -> list[str]:
    """The comma list of a batch call: 1 to 100 items, kept as the client wrote them."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or len(items) > MAX_IDS:
        raise Refusal(BAD_REQUEST)
    return items


# --- actions -------------------------------------------------------------------------------

def services(user: User, params: Params) -> Reply:
    listed = Service.objects.enabled().with_routes()
    custom = dict(user.custom_rates.values_list("service_id", "rate"))
    reply = []
    for service in listed:
        rate = pricing.customer_rate(service, user, custom)
        if rate is None:
            continue  # nothing can deliver it right now
        reply.append({
            "service": service.pk, "name": service.name, "type": service.type,
            "category": service.category.name, "rate": format_money(rate),
            "min": str(service.min_quantity), "max": str(service.max_quantity),
            "refill": service.refill, "cancel": service.cancel, "dripfeed": service.dripfeed,
            "description": service.description,
        })
    return reply


def add(user: User, params: Params) -> Reply:
    if not params.get("service"):
        raise Refusal(BAD_REQUEST)
    return {"order": place_order(user, params["service"], params).pk}


def status(user: User, params: Params) -> Reply:
    if "orders" in params:
        named = [(item, parse_id(item)) for item in _ids(params["orders"])]
        found = _customer_orders(user, [pk for _, pk in named if pk is not None])
        return {item: found.get(pk) or {"error": INCORRECT_ORDER} for item, pk in named}
    if "order" not in params:
        raise Refusal(BAD_REQUEST)
    order_id = parse_id(params["order"])
    found = _customer_orders(user, [order_id]) if order_id else {}
    if order_id not in found:
        raise Refusal(INCORRECT_ORDER)
    return found[order_id]


def _customer_orders(user: User, ids: list[int]) -> dict[int | None, dict[str, str]]:
    found = api_statuses(user.pk, ids, settings.PANEL_CURRENCY)
    return {pk: reply for pk, reply in found.items()}  # looked up by what parse_id returns


def refill(user: User, params: Params) -> Reply:
    if "orders" in params:
        return [_refill_item(user, item) for item in _ids(params["orders"])]
    if "order" not in params:
        raise Refusal(BAD_REQUEST)
    return {"refill": str(refills.request_refill(user, params["order"]).pk)}


def _refill_item(user: User, item: str) -> dict[str, Any]:
    try:
        result: Any = refills.request_refill(user, item).pk
    except Refusal as exc:
        result = {"error": exc.message}
    return {"order": parse_id(item) or item, "refill": result}


def refill_status(user: User, params: Params) -> Reply:
    if "refills" in params:
        items = _ids(params["refills"])
        found = _customer_refills(user, items)
        return [{"refill": parse_id(item) or item,
                 "status": found[i].customer_status if (i := parse_id(item)) in found
                 else {"error": REFILL_NOT_FOUND}} for item in items]
    if "refill" not in params:
        raise Refusal(BAD_REQUEST)
    refill_id = parse_id(params["refill"])
    found = _customer_refills(user, [str(refill_id)]) if refill_id else {}
    if refill_id not in found:
        raise Refusal(REFILL_NOT_FOUND)
    return {"status": found[refill_id].customer_status}


def _customer_refills(user: User, items: list[str]) -> dict[int | None, Refill]:
    ids = [i for i in (parse_id(item) for item in items) if i is not None]
    return dict(Refill.objects.filter(user=user).in_bulk(ids))


def cancel(user: User, params: Params) -> Reply:
    text = params.get("orders") or params.get("order") or ""
    return [_cancel_item(user, item) for item in _ids(text)]


def _cancel_item(user: User, item: str) -> dict[str, Any]:
    try:
        cancels.request_cancel(user, item)
        result: Any = 1
    except Refusal as exc:
        result = {"error": exc.message}
    return {"order": parse_id(item) or item, "cancel": result}


def balance(user: User, params: Params) -> Reply:
    user.refresh_from_db(fields=["balance"])
    return {"balance": format_money(user.balance), "currency": settings.PANEL_CURRENCY}


ACTIONS: dict[str, Callable[[User, Params], Reply]] = {
    "services": services, "add": add, "status": status, "refill": refill,
    "refill_status": refill_status, "cancel": cancel, "balance": balance,
}
