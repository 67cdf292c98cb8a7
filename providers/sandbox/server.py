"""The sandbox provider's HTTP side: API v2 actions, faults on demand and the control endpoint."""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .catalog import (
    FLAT_TYPES,
    Service,
    default_catalog,
    service_from_dict,
    synthetic_catalog,
)
from .store import BAD_ORDER, NewOrder, Order, OrderState, Store, format_money, quantize_money

DEFAULT_KEY = "sandbox-key"
DEFAULT_BALANCE = Decimal("10000")
CURRENCY = "USD"
MAX_IDS = 100
MAX_BODY = 20 * 1024 * 1024

BAD_REQUEST = "Incorrect request"
BAD_KEY = "Invalid API key"
BAD_SERVICE = "Incorrect service ID"
BAD_LINK = "Incorrect link"
NO_REFILL_FOUND = "Refill not found"

ALLOWED_DELAYS = frozenset(
    {0, 5, 10, 15, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 360, 420, 480, 540, 600}
)

# Where each type takes its charged quantity from, and which text / list parameters it needs.
# "flat" types charge the rate once; list-counted types charge one unit per non-empty line.
TYPE_PARAMS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "Default": ("quantity", (), ()),
    "Package": ("flat", (), ()),
    "Custom Comments": ("comments", (), ("comments",)),
    "Custom Comments Package": ("flat", (), ("comments",)),
    "Mentions with Hashtags": ("quantity", (), ("usernames", "hashtags")),
    "Mentions Custom List": ("usernames", (), ("usernames",)),
    "Mentions Hashtag": ("quantity", ("hashtag",), ()),
    "Mentions User Followers": ("quantity", ("username",), ()),
    "Mentions Media Likers": ("quantity", ("media",), ()),
    "Comment Likes": ("quantity", ("username",), ()),
    "Comment Replies": ("comments", ("username",), ("comments",)),
    "Poll": ("quantity", ("answer_number",), ()),
    "Invites from Groups": ("quantity", (), ("groups",)),
}

FAULT_NAMES: tuple[str, ...] = (
    "latency", "refuse", "timeout_before", "timeout_after", "http500", "http429", "html",
    "truncated", "error", "garbage", "no_lists", "strict_lists", "trickle",
)
DEFAULT_FAULT_DELAY = {"latency": 1.0, "refuse": 5.0, "timeout_before": 30.0,
                       "timeout_after": 30.0, "trickle": 0.2}
DEFAULT_FAULT_MESSAGE = "Service temporarily unavailable"
# Faults after which the request has been carried out (the order exists upstream).
# `trickle` sends the reply one byte every `delay` seconds: no single wait trips a read timeout.
PROCESSING_FAULTS = frozenset({"latency", "timeout_after", "truncated", "trickle"})
# Upstreams that are picky about lists of ids (`orders=`, `refills=`): `no_lists` refuses
# any list as a whole; `strict_lists` refuses a list naming one id it does not know, with
# that id's error at the top level. Either way nothing in the refused list is carried out,
# and single-id requests are answered as usual.
LIST_FAULTS = frozenset({"no_lists", "strict_lists"})
# Ways real upstreams differ from the protocol, switched on per test like faults (issue 14).
# Each is a behaviour of a real panel, not a failure: the reply is well-formed but misleads.
QUIRK_NAMES: tuple[str, ...] = (
    "zero_remains",        # remains "0" on live orders and on a Partial without a count
    "two_decimal_rates",   # rates stored with two decimals: 0.004 becomes "0.00"
    "own_bad_key_words",   # its own wording for a refused key or account
    "no_refill_cancel",    # refill, refill_status and cancel answer "Request Invalid"
    "dripfeed_rules",      # intervals of 10..60 minutes only; charges one run of a drip-feed
    "slow_multi_status",   # a multi-id status takes longer the more ids it names
    "literal_newlines",    # lists split on a literal backslash-n, not on real newlines
    "html_prefix",         # pages of PHP warnings before every JSON reply
)
# `slow_multi_status`: seconds a multi-id status takes per id it names (a panel that scans
# its orders table once per id); set per test with SandboxServer.set_status_delay.
DEFAULT_STATUS_DELAY_PER_ID = 0.01
# `dripfeed_rules`: the drip-feed intervals (minutes) that upstream accepts, and its refusal.
DRIPFEED_RULE_INTERVALS = frozenset(range(10, 61, 10))
DRIPFEED_RULE_REFUSAL = "Request Invalid"
LIST_PARAMS = {"status": "orders", "refill": "orders", "refill_status": "refills",
               "cancel": "orders"}

MAINTENANCE_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>503 Service Temporarily Unavailable</title>
<style>body{font-family:sans-serif;text-align:center;padding:80px;color:#333}</style></head>
<body><h1>We&rsquo;ll be back soon!</h1>
<p>Sorry for the inconvenience but we&rsquo;re performing some maintenance at the moment.</p>
<hr><p><small>Ray ID: 7c1a2b3d4e5f6a7b &bull; Performance &amp; security by Cloudflare</small></p>
</body></html>
"""
# What a PHP panel in development mode prints before its JSON (`html_prefix` quirk): the
# warnings also stop it from setting its JSON content type, so the reply goes out as HTML.
PHP_WARNINGS = (
    b"<br />\n<b>Deprecated</b>:  Creation of dynamic property Api::$db is deprecated in "
    b"<b>/var/www/panel/app/Api.php</b> on line <b>41</b><br />\n"
    b"<br />\n<b>Warning</b>:  Undefined array key \"runs\" in "
    b"<b>/var/www/panel/app/Api.php</b> on line <b>118</b><br />\n"
    b"<br />\n<b>Warning</b>:  Cannot modify header information - headers already sent by "
    b"(output started at /var/www/panel/app/Api.php:41) in "
    b"<b>/var/www/panel/app/Api.php</b> on line <b>203</b><br />\n"
) * 30  # pages of them: the same three warnings for every loop the script runs
GARBAGE = b"\x1f\x8b\x08\x00\xff\xfe<?php \x00\x13 Notice: Undefined index\xc3\x28\x9d{\"ord"


class AddRefused(Exception):
    """An `add` the panel turns down; the message is the API's error text."""


# --- request parameters -------------------------------------------------------------------


def _stringify(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        # JSON clients may send id lists as arrays and text lists as arrays of lines.
        sep = "," if name in ("orders", "refills") else "\n"
        return sep.join(str(v) for v in value)
    return str(value)


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    message = BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n"
                                       + body)
    fields: dict[str, str] = {}
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", "replace")
    return fields


def parse_params(query: str, content_type: str, body: bytes) -> dict[str, str]:
    """Merge query-string and body parameters (form, JSON or multipart); the body wins."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    ctype = content_type.lower()
    text = body.decode("utf-8", "replace")
    if "json" in ctype or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for name, value in data.items():
                converted = _stringify(str(name), value)
                if converted is not None:
                    params[str(name)] = converted
            return params
    if ctype.startswith("multipart/form-data"):
        params.update(_multipart(content_type, body))
        return params
    params.update(parse_qsl(text, keep_blank_values=True))
    return params


# --- add: validation per service type -----------------------------------------------------


def split_lines(text: str) -> list[str]:
    """A list parameter: one item per line, `\\n` or `\\r\\n`, blank lines ignored."""
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


def valid_link(link: str) -> bool:
    if not link or any(ch.isspace() for ch in link):
        return False
    parts = urlsplit(link)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _int_param(params: Mapping[str, str], name: str, minimum: int = 0) -> int | None:
    raw = params.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < minimum:
        raise AddRefused(BAD_REQUEST)
    return int(raw)


def _required_int(params: Mapping[str, str], name: str, minimum: int = 0) -> int:
    value = _int_param(params, name, minimum)
    if value is None:
        raise AddRefused(BAD_REQUEST)
    return value


def _check_bounds(service: Service, quantity: int) -> None:
    if quantity < service.min_qty:
        raise AddRefused(f"Quantity less than minimal {service.min_qty}")
    if quantity > service.max_qty:
        raise AddRefused(f"Quantity more than maximum {service.max_qty}")


def _dripfeed(service: Service, params: Mapping[str, str]) -> tuple[int, int | None]:
    # Many clients send runs=0/interval=0 or blanks when they mean "no drip-feed".
    runs = _int_param(params, "runs") or 0
    interval = _int_param(params, "interval") or 0
    if not runs and not interval:
        return 1, None
    if not service.dripfeed or not runs or not interval:
        raise AddRefused(BAD_REQUEST)
    return runs, interval


def _type_quantity(service: Service, params: Mapping[str, str]) -> int:
    """Check the type's own parameters and return the quantity it charges for."""
    source, texts, lists = TYPE_PARAMS.get(service.kind, TYPE_PARAMS["Default"])
    for name in texts:
        if not params.get(name, "").strip():
            raise AddRefused(BAD_REQUEST)
    for name in lists:
        if not split_lines(params.get(name, "")):
            raise AddRefused(BAD_REQUEST)
    if service.kind == "Poll":
        _required_int(params, "answer_number", minimum=1)
    if source == "flat":
        return 1
    if source == "quantity":
        return _required_int(params, "quantity")
    return len(split_lines(params.get(source, "")))


def _charge(service: Service, charged_quantity: int) -> Decimal:
    rate = Decimal(service.rate)
    if service.kind in FLAT_TYPES:
        return quantize_money(rate)
    return quantize_money(rate * charged_quantity / 1000)


def build_order(service: Service, params: Mapping[str, str], now: float) -> NewOrder:
    """Validate an `add` for its service type; raises AddRefused with the API's error text."""
    kept = {k: v for k, v in params.items() if k not in ("key", "action")}
    if service.kind == "Subscriptions":
        return _subscription(service, params, kept, now)
    link = params.get("link", "").strip()
    if not valid_link(link):
        raise AddRefused(BAD_LINK)
    quantity = _type_quantity(service, params)
    if service.kind not in FLAT_TYPES:
        _check_bounds(service, quantity)
    runs, interval = _dripfeed(service, params)
    total = quantity * runs
    return NewOrder(service=service, link=link, quantity=total, charge=_charge(service, total),
                    params=kept, runs=runs, interval=interval)


def _expiry(params: Mapping[str, str], now: float) -> float | None:
    raw = params.get("expiry", "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%d/%m/%Y").replace(tzinfo=UTC)
    except ValueError as exc:
        raise AddRefused(BAD_REQUEST) from exc
    end_of_day = day.timestamp() + 86400
    if end_of_day <= now:
        raise AddRefused(BAD_REQUEST)
    return end_of_day


def _subscription(
    service: Service, params: Mapping[str, str], kept: dict[str, str], now: float,
) -> NewOrder:
    username = params.get("username", "").strip()
    if not username:
        raise AddRefused(BAD_REQUEST)
    low, high = _required_int(params, "min"), _required_int(params, "max")
    if _required_int(params, "delay") not in ALLOWED_DELAYS or low > high:
        raise AddRefused(BAD_REQUEST)
    _check_bounds(service, low)
    _check_bounds(service, high)
    posts = _int_param(params, "posts") or None
    old_posts = _int_param(params, "old_posts") or 0
    expiry = _expiry(params, now)
    # Paid up front for the posts it will cover (the worst case, `max` per post); an
    # open-ended subscription pays only for the old posts it parses.
    covered = (posts or 0) + old_posts
    quantity = high * covered
    return NewOrder(service=service, link=username, quantity=quantity,
                    charge=_charge(service, quantity), params=kept,
                    posts=covered if posts else None, expiry=expiry)


# --- actions ------------------------------------------------------------------------------


def _error(message: str) -> dict[str, Any]:
    return {"error": message}


def _parse_ids(text: str) -> list[str] | None:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return parts if 0 < len(parts) <= MAX_IDS else None


def _as_int(raw: str) -> int | None:
    return int(raw) if raw.isdigit() else None


def _id_value(raw: str) -> int | str:
    number = _as_int(raw)
    return raw if number is None else number


def _status_item(found: tuple[Order, OrderState] | None) -> dict[str, Any]:
    if found is None:
        return _error(BAD_ORDER)
    order, state = found
    return {"charge": order.charge, "start_count": state.start_count, "status": state.status,
            "remains": state.remains, "currency": CURRENCY}


# --- quirks 1-4 of issue 14: how some real upstreams' replies differ ------------------------


# A real panel's words for a refused key or disabled account, as it sent them.
OWN_BAD_KEY_WORDS = "API is disable for this user or user not found"


# What a panel without refills and cancels answers when asked for them.
NO_SUCH_ACTIONS = frozenset({"refill", "refill_status", "cancel"})
REQUEST_INVALID = "Request Invalid"


def quirked_reply(quirks: set[str], action: str, reply: Any) -> Any:
    """The reply as an upstream with these quirks words it."""
    if "own_bad_key_words" in quirks and reply == _error(BAD_KEY):
        return _error(OWN_BAD_KEY_WORDS)
    if "zero_remains" in quirks and action == "status":
        # remains "0" until someone sets it: on live orders, and on a Partial without a count.
        return _zero_remains(reply)
    return reply


def _zero_remains(reply: Any) -> Any:
    if not isinstance(reply, dict):
        return reply
    if "status" in reply:
        return {**reply, "remains": "0"}
    return {k: _zero_remains(v) for k, v in reply.items()}  # a multi-id status


def two_decimal_service(service: Service) -> Service:
    """The service as an upstream that stores rates with two decimals has it: 0.004 → 0.00."""
    rate = Decimal(service.rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return replace(service, rate=f"{rate:f}")


class Api:
    """API v2 actions on top of the store; replies are JSON-ready objects (or raw JSON bytes)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.quirks: set[str] = set()
        self.status_delay_per_id = DEFAULT_STATUS_DELAY_PER_ID
        self._actions: dict[str, Callable[[str, Mapping[str, str], float], Any]] = {
            "services": lambda key, params, now: self._services(),
            "balance": self._balance,
            "status": self._status,
            "refill": self._refill,
            "refill_status": self._refill_status,
            "cancel": self._cancel,
        }

    def handle(self, params: Mapping[str, str], fault: str | None = None) -> Any:
        """Answer one API call; every `add` is written to the add log with its outcome."""
        return quirked_reply(self.quirks, params.get("action", ""), self._answer(params, fault))

    def _answer(self, params: Mapping[str, str], fault: str | None) -> Any:
        now = time.time()
        key, action = params.get("key", ""), params.get("action", "")
        if action == "add":
            reply = self._add(key, params, now)
            self.store.log_add(key, _loggable(params), now, order_id=reply.get("order"),
                               error=reply.get("error"), fault=fault)
            return reply
        if not key or not self.store.has_key(key):
            return _error(BAD_KEY)
        if "no_refill_cancel" in self.quirks and action in NO_SUCH_ACTIONS:
            return _error(REQUEST_INVALID)  # a panel without them: every form, every id
        handler = self._actions.get(action)
        return _error(BAD_REQUEST) if handler is None else handler(key, params, now)

    def handle_lists(self, params: Mapping[str, str], fault: str) -> Any:
        """Answer one call the way an upstream of a LIST_FAULTS kind would."""
        key, action = params.get("key", ""), params.get("action", "")
        text = params.get(LIST_PARAMS.get(action, ""), "").strip()
        if not text or not key or not self.store.has_key(key):
            return self.handle(params)
        if fault == "no_lists":
            return _error(BAD_REQUEST)
        unknown = self._unknown_id_error(key, action, _parse_ids(text) or [])
        return _error(unknown) if unknown else self.handle(params)

    def _unknown_id_error(self, key: str, action: str, raw_ids: list[str]) -> str | None:
        numbers = [_as_int(raw) for raw in raw_ids]
        known = [n for n in numbers if n is not None]
        if action == "refill_status":
            states = self.store.refill_states(key, known, time.time())
            found = {n for n, state in states.items() if state is not None}
            message = NO_REFILL_FOUND
        else:
            orders = self.store.order_states(key, known, time.time())
            found = {n for n, order in orders.items() if order is not None}
            message = BAD_ORDER
        return message if any(n not in found for n in numbers) else None

    def _add(self, key: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        if not key or not self.store.has_key(key):
            return _error(BAD_KEY)
        service_raw = params.get("service", "").strip()
        service = self.store.service(int(service_raw)) if service_raw.isdigit() else None
        if service is None:
            return _error(BAD_SERVICE)
        if "two_decimal_rates" in self.quirks:
            service = two_decimal_service(service)  # it charges what it stored
        try:
            if "literal_newlines" in self.quirks:
                new = _literal_newlines(service, params, now)
            else:
                new = build_order(service, params, now)
            if "dripfeed_rules" in self.quirks:
                new = _dripfeed_rules(new)
        except AddRefused as refused:
            return _error(str(refused))
        outcome = self.store.create_order(key, new, now)
        return _error(outcome) if isinstance(outcome, str) else {"order": outcome}

    def _services(self) -> Any:
        if "two_decimal_rates" in self.quirks:
            return [two_decimal_service(s).to_api() for s in self.store.services()]
        return self.store.services_json()

    def _balance(self, key: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        balance = self.store.balance(key, now) or Decimal(0)
        return {"balance": format_money(balance), "currency": CURRENCY}

    def _status(self, key: str, params: Mapping[str, str], now: float) -> dict[str, Any]:
        if params.get("orders", "").strip():
            raw_ids = _parse_ids(params["orders"])
            if raw_ids is None:
                return _error(BAD_REQUEST)
            numbers = [n for n in map(_as_int, raw_ids) if n is not None]
            found = self.store.order_states(key, numbers, now)
            return {raw: _status_item(found.get(_as_int(raw) or -1)) for raw in raw_ids}
        raw = params.get("order", "").strip()
        if not raw:
            return _error(BAD_REQUEST)
        number = _as_int(raw)
        if number is None:
            return _error(BAD_ORDER)
        return _status_item(self.store.order_states(key, [number], now)[number])

    def _refill_one(self, key: str, raw: str, now: float) -> int | str:
        number = _as_int(raw)
        return BAD_ORDER if number is None else self.store.create_refill(key, number, now)

    def _refill(self, key: str, params: Mapping[str, str], now: float) -> Any:
        if params.get("orders", "").strip():
            raw_ids = _parse_ids(params["orders"])
            if raw_ids is None:
                return _error(BAD_REQUEST)
            items = [(raw, self._refill_one(key, raw, now)) for raw in raw_ids]
            return [{"order": _id_value(raw), "refill": _error(out) if isinstance(out, str)
                     else out} for raw, out in items]
        raw = params.get("order", "").strip()
        if not raw:
            return _error(BAD_REQUEST)
        outcome = self._refill_one(key, raw, now)
        return _error(outcome) if isinstance(outcome, str) else {"refill": str(outcome)}

    def _refill_status(self, key: str, params: Mapping[str, str], now: float) -> Any:
        if params.get("refills", "").strip():
            raw_ids = _parse_ids(params["refills"])
            if raw_ids is None:
                return _error(BAD_REQUEST)
            found = self.store.refill_states(
                key, [n for n in map(_as_int, raw_ids) if n is not None], now)
            return [{"refill": _id_value(raw),
                     "status": found.get(_as_int(raw) or -1) or _error(NO_REFILL_FOUND)}
                    for raw in raw_ids]
        raw = params.get("refill", "").strip()
        if not raw:
            return _error(BAD_REQUEST)
        number = _as_int(raw)
        status = None if number is None else self.store.refill_states(key, [number], now)[number]
        return _error(NO_REFILL_FOUND) if status is None else {"status": status}

    def _cancel(self, key: str, params: Mapping[str, str], now: float) -> Any:
        # The seed only documents `orders`; a single `order` gets the same list shape.
        text = params.get("orders", "").strip() or params.get("order", "").strip()
        raw_ids = _parse_ids(text) if text else None
        if raw_ids is None:
            return _error(BAD_REQUEST)
        replies = []
        for raw in raw_ids:
            number = _as_int(raw)
            refused = BAD_ORDER if number is None else self.store.cancel(key, number, now)
            replies.append({"order": _id_value(raw),
                            "cancel": 1 if refused is None else _error(refused)})
        return replies


def _dripfeed_rules(new: NewOrder) -> NewOrder:
    """The `dripfeed_rules` quirk: intervals of 10, 20 … 60 minutes only, and a drip-feed is
    charged for one run although all of them are delivered."""
    if new.runs <= 1:
        return new
    if new.interval not in DRIPFEED_RULE_INTERVALS:
        raise AddRefused(DRIPFEED_RULE_REFUSAL)
    return replace(new, charge=_charge(new.service, new.quantity // new.runs))


def _literal_newlines(service: Service, params: Mapping[str, str], now: float) -> NewOrder:
    """The `literal_newlines` quirk: lists are split on a literal backslash-n (the two
    characters), so lines sent with real newlines are one item to it, validated and charged
    as one. The order keeps the parameters as they were sent."""
    lists = TYPE_PARAMS.get(service.kind, TYPE_PARAMS["Default"])[2]
    as_split = {name: value.replace("\r\n", "\n").replace("\n", " ").replace("\\n", "\n")
                if name in lists else value for name, value in params.items()}
    new = build_order(service, as_split, now)
    return replace(new, params={k: v for k, v in params.items() if k not in ("key", "action")})


def _loggable(params: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k != "key"}


# --- faults -------------------------------------------------------------------------------


@dataclass
class Fault:
    """A misbehaviour to show on matching API calls; `times` None means until cleared."""

    name: str
    key: str | None = None
    action: str | None = None
    delay: float | None = None
    message: str | None = None
    times: int | None = None

    def __post_init__(self) -> None:
        if self.name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {self.name!r}; known: {', '.join(FAULT_NAMES)}")
        if self.delay is None:
            self.delay = DEFAULT_FAULT_DELAY.get(self.name, 0.0)
        if self.times is not None and self.times <= 0:
            self.times = None

    @property
    def seconds(self) -> float:
        return float(self.delay or 0.0)


class FaultBook:
    """Faults by (key, action) slot; the most specific slot matching a call wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str | None, str | None], Fault] = {}

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._slots[(fault.key, fault.action)] = fault

    def clear(self, key: str | None = None, action: str | None = None) -> None:
        with self._lock:
            if key is None and action is None:
                self._slots.clear()
                return
            for slot in [s for s in self._slots if (key is None or s[0] == key)
                         and (action is None or s[1] == action)]:
                del self._slots[slot]

    def take(self, key: str, action: str) -> Fault | None:
        """The fault for this call, counting down a limited one."""
        with self._lock:
            for slot in ((key, action), (key, None), (None, action), (None, None)):
                fault = self._slots.get(slot)
                if fault is None:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._slots[slot]
                return fault
            return None

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._slots.values()]


# --- HTTP ---------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, keep-alive clients wait ~40 ms.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "nginx"  # what real panels show behind their reverse proxy

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _route(self, method: str) -> None:
        sandbox = self.server.sandbox
        if sandbox.refusing:
            self._drop()  # a keep-alive connection must not outlive a refused listener
            return
        path, _, query = self.path.partition("?")
        try:
            body = self._body()
            if path.rstrip("/") == "/api/v2":
                self._api(parse_params(query, self.headers.get("Content-Type", ""), body))
            elif path.startswith("/control/"):
                self._control(method, path, query, body)
            else:
                self._send(404, json.dumps(_error("Not found")).encode())
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._send(500, json.dumps(_error("Internal server error")).encode())

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_reply(self, reply: Any) -> None:
        if self.server.sandbox.has_quirk("html_prefix"):
            self._send(200, PHP_WARNINGS + _encode(reply), "text/html; charset=UTF-8")
            return
        self._send(200, _encode(reply))

    def _drop(self) -> None:
        # Close without a byte of reply: the client sees a reset / remote disconnect.
        self.close_connection = True

    # API ---------------------------------------------------------------------------------

    def _api(self, params: dict[str, str]) -> None:
        sandbox = self.server.sandbox
        if sandbox.has_quirk("slow_multi_status"):
            self._slow_multi_status(params)
        fault = sandbox.faults.take(params.get("key", ""), params.get("action", ""))
        if fault is None:
            self._send_reply(sandbox.api.handle(params))
            return
        if fault.name in PROCESSING_FAULTS:
            self._processed_fault(fault, params)
            return
        if fault.name in LIST_FAULTS:
            self._send_reply(sandbox.api.handle_lists(params, fault.name))
            return
        if params.get("action") == "add":
            error = (fault.message or DEFAULT_FAULT_MESSAGE) if fault.name == "error" else None
            sandbox.store.log_add(params.get("key", ""), _loggable(params), time.time(),
                                  error=error, fault=fault.name)
        self._unprocessed_fault(fault)

    def _processed_fault(self, fault: Fault, params: dict[str, str]) -> None:
        sandbox = self.server.sandbox
        if fault.name == "latency":
            sandbox.sleep(fault.seconds)
        reply = _encode(sandbox.api.handle(params, fault=fault.name))
        if fault.name == "timeout_after":
            sandbox.sleep(fault.seconds)
            self._drop()
        elif fault.name == "truncated":
            self._send(200, reply[: max(1, len(reply) // 2)])
            self.close_connection = True
        elif fault.name == "trickle":
            self._trickle(reply, fault.seconds)
        else:
            self._send(200, reply)

    def _slow_multi_status(self, params: dict[str, str]) -> None:
        """The `slow_multi_status` quirk: a status naming many ids answers that much later."""
        ids = _parse_ids(params.get("orders", "")) if params.get("action") == "status" else None
        if ids:
            sandbox = self.server.sandbox
            sandbox.sleep(sandbox.api.status_delay_per_id * len(ids))

    def _trickle(self, reply: bytes, every: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.flush()
        try:
            for byte in range(len(reply)):
                self.server.sandbox.sleep(every)
                self.wfile.write(reply[byte:byte + 1])
                self.wfile.flush()
        except OSError:
            pass  # the client gave up waiting, as it should
        self.close_connection = True

    def _unprocessed_fault(self, fault: Fault) -> None:
        if fault.name == "timeout_before":
            self.server.sandbox.sleep(fault.seconds)
            self._drop()
        elif fault.name == "http500":  # a message, if given, is the page (a stack trace, say)
            page = (fault.message or "500 Internal Server Error").encode()
            self._send(500, page, "text/plain; charset=utf-8")
        elif fault.name == "http429":  # a rate limiter in front of the API refused the call
            self._send(429, b"429 Too Many Requests", "text/plain; charset=utf-8")
        elif fault.name == "html":
            self._send(200, MAINTENANCE_PAGE, "text/html; charset=utf-8")
        elif fault.name == "error":
            self._send_reply(_error(fault.message or DEFAULT_FAULT_MESSAGE))
        elif fault.name == "garbage":
            self._send(200, GARBAGE)
        else:  # refuse acts on the listener when set; a leftover one just answers normally
            self._send_reply(self.server.sandbox.api.handle({}))

    # control -----------------------------------------------------------------------------

    def _control(self, method: str, path: str, query: str, body: bytes) -> None:
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            self._send(403, json.dumps(_error("Forbidden")).encode())
            return
        try:
            data = json.loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            code, reply = self.server.sandbox.control(method, path, dict(parse_qsl(query)), data)
        except (ValueError, KeyError, TypeError) as exc:
            code, reply = 400, _error(f"{type(exc).__name__}: {exc}")
        self._send(code, _encode(reply))


def _encode(reply: Any) -> bytes:
    if isinstance(reply, bytes):
        return reply
    return json.dumps(reply, separators=(",", ":")).encode()


# --- the server -------------------------------------------------------------------------


class SandboxServer:
    """A standalone API v2 upstream on 127.0.0.1, run in a daemon thread.

    `step_seconds` is the pace of order progress (0 = orders are final when first looked at).
    """

    def __init__(
        self, port: int = 0, step_seconds: float = 0.0, catalog_size: int | None = None,
        db: str = ":memory:", *, host: str = "127.0.0.1",
        keys: Mapping[str, Decimal | str | int] | None = None, fault: str | None = None,
        fault_delay: float | None = None, fault_message: str | None = None,
        partial_every: int = 8, rejected_every: int = 10, verbose: bool = False,
    ) -> None:
        self.host, self.verbose, self.key = host, verbose, DEFAULT_KEY
        self.store = Store(db, step_seconds, partial_every, rejected_every)
        self.store.replace_services(
            default_catalog() if catalog_size is None else synthetic_catalog(catalog_size))
        self.store.ensure_key(DEFAULT_KEY, DEFAULT_BALANCE)
        for key, balance in (keys or {}).items():
            self.store.set_balance(key, Decimal(str(balance)))
        self.api = Api(self.store)
        self.faults = FaultBook()
        self._initial_fault = (
            Fault(fault, delay=fault_delay, message=fault_message) if fault else None)
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._listen_lock = threading.Lock()
        self._reopen_timer: threading.Timer | None = None
        self._refuse_until = 0.0
        self._stopping = threading.Event()
        self._stopped = False

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        with self._listen_lock:
            self._listen()
        if self._initial_fault is not None:
            self.set_fault(self._initial_fault.name, delay=self._initial_fault.delay,
                           message=self._initial_fault.message)
        return self

    def stop(self) -> None:
        with self._listen_lock:
            self._stopped = True
            if self._reopen_timer is not None:
                self._reopen_timer.cancel()
            self._close_listener()
        self._stopping.set()  # wakes handlers sleeping in a latency/timeout fault

    def __enter__(self) -> SandboxServer:
        return self.start() if self._httpd is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen(self) -> None:
        # Rebinding the same port right after a refuse window can race the OS; retry briefly.
        for attempt in range(40):
            try:
                self._httpd = _HTTPServer((self.host, self._port), self)
                break
            except OSError:
                if attempt == 39 or self._port == 0:
                    raise
                time.sleep(0.05)
        assert self._httpd is not None
        self._port = int(self._httpd.server_address[1])
        thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"sandbox-{self._port}", daemon=True)
        thread.start()

    def _close_listener(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def refuse(self, seconds: float) -> None:
        """Close the listening socket so connections are refused, and reopen it after `seconds`."""
        with self._listen_lock:
            if self._stopped:
                return
            self._refuse_until = time.monotonic() + seconds
            self._close_listener()
            if self._reopen_timer is not None:
                self._reopen_timer.cancel()
            self._reopen_timer = threading.Timer(seconds, self._reopen)
            self._reopen_timer.daemon = True
            self._reopen_timer.start()

    def _reopen(self) -> None:
        with self._listen_lock:
            if not self._stopped and self._httpd is None:
                self._refuse_until = 0.0
                self._listen()

    @property
    def refusing(self) -> bool:
        return time.monotonic() < self._refuse_until

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/api/v2"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/control"

    # Python API ----------------------------------------------------------------------------

    def add_key(self, key: str, balance: Decimal | str | int = DEFAULT_BALANCE) -> None:
        self.store.set_balance(key, Decimal(str(balance)))

    def set_balance(self, key: str, balance: Decimal | str | int) -> None:
        self.store.set_balance(key, Decimal(str(balance)))

    def balance(self, key: str | None = None) -> Decimal | None:
        return self.store.balance(key or self.key, time.time())

    def set_fault(
        self, name: str, key: str | None = None, action: str | None = None,
        delay: float | None = None, message: str | None = None, times: int | None = None,
    ) -> None:
        """Misbehave on matching calls; `refuse` instead closes the listener right away."""
        fault = Fault(name, key=key, action=action, delay=delay, message=message, times=times)
        if name == "refuse":
            self.refuse(fault.seconds)
            return
        self.faults.set(fault)

    def clear_faults(self, key: str | None = None, action: str | None = None) -> None:
        self.faults.clear(key, action)

    def set_quirk(self, name: str, on: bool = True) -> None:
        """Behave like a real upstream of that kind on every call until cleared."""
        if name not in QUIRK_NAMES:
            raise ValueError(f"unknown quirk {name!r}")
        (self.api.quirks.add if on else self.api.quirks.discard)(name)

    def set_status_delay(self, seconds_per_id: float) -> None:
        """How long a multi-id status takes per id under the `slow_multi_status` quirk."""
        self.api.status_delay_per_id = max(0.0, float(seconds_per_id))

    def clear_quirks(self) -> None:
        self.api.quirks.clear()

    def has_quirk(self, name: str) -> bool:
        return name in self.api.quirks

    def adds(self, key: str | None = None) -> list[dict[str, Any]]:
        return self.store.adds(key)

    def services(self) -> list[dict[str, Any]]:
        return [s.to_api() for s in self.store.services()]

    def set_catalog(self, services: Iterable[Mapping[str, Any] | Service]) -> None:
        self.store.replace_services(
            s if isinstance(s, Service) else service_from_dict(s) for s in services)

    def set_catalog_size(self, size: int) -> None:
        self.store.replace_services(synthetic_catalog(size))

    def update_service(self, service_id: int, **fields: Any) -> dict[str, Any]:
        return self.store.update_service(int(service_id), fields).to_api()

    def remove_services(self, ids: Iterable[int]) -> None:
        self.store.remove_services(ids)

    def force_order(
        self, order_id: int, status: str | None = None, remains: int | str | None = None,
        start_count: int | str | None = None,
    ) -> dict[str, str]:
        state = self.store.force_order(int(order_id), time.time(), status, remains, start_count)
        return {"status": state.status, "remains": state.remains,
                "start_count": state.start_count}

    def order(self, order_id: int) -> dict[str, Any] | None:
        return self.store.order_info(int(order_id), time.time())

    @property
    def step_seconds(self) -> float:
        return self.store.step_seconds

    def set_speed(self, step_seconds: float) -> None:
        self.store.set_step(float(step_seconds), time.time())

    # control endpoint --------------------------------------------------------------------

    def control(
        self, method: str, path: str, query: dict[str, str], data: dict[str, Any],
    ) -> tuple[int, Any]:
        """Route one control call: returns (HTTP status, JSON reply)."""
        parts = [p for p in path.split("/") if p][1:]
        name = parts[0] if parts else ""
        if name == "orders" and len(parts) == 2 and parts[1].isdigit():
            return self._control_order(method, int(parts[1]), data)
        route = _CONTROL_ROUTES.get((method, name))
        if route is None or len(parts) != 1:
            return 404, _error("Not found")
        return 200, route(self, query, data)

    def _control_order(self, method: str, order_id: int, data: dict[str, Any]) -> tuple[int, Any]:
        if self.order(order_id) is None:
            return 404, _error(BAD_ORDER)
        if method == "POST":
            self.force_order(order_id, data.get("status"), data.get("remains"),
                             data.get("start_count"))
        return 200, self.order(order_id)

    def _control_set_fault(self, query: dict[str, str], data: dict[str, Any]) -> Any:
        if data.get("fault") is None:
            self.clear_faults(data.get("key"), data.get("action"))
        else:
            times = data.get("times")
            delay = data.get("delay")
            self.set_fault(str(data["fault"]), key=data.get("key"), action=data.get("action"),
                           delay=None if delay is None else float(delay),
                           message=data.get("message"),
                           times=None if times is None else int(times))
        return {"ok": True, "faults": self.faults.listing()}

    def _control_clear_faults(self, query: dict[str, str], data: dict[str, Any]) -> Any:
        self.clear_faults(query.get("key"), query.get("action"))
        return {"ok": True, "faults": self.faults.listing()}

    def _control_set_quirk(self, query: dict[str, str], data: dict[str, Any]) -> Any:
        self.set_quirk(str(data["quirk"]), on=bool(data.get("on", True)))
        if data.get("per_id") is not None:  # slow_multi_status: seconds per id
            self.set_status_delay(float(data["per_id"]))
        return {"ok": True, "quirks": sorted(self.api.quirks)}

    def _control_clear_quirks(self, query: dict[str, str], data: dict[str, Any]) -> Any:
        self.clear_quirks()
        return {"ok": True, "quirks": []}

    def _control_catalog(self, query: dict[str, str], data: dict[str, Any]) -> Any:
        if "services" in data:
            self.set_catalog(data["services"])
        if "size" in data:
            self.set_catalog_size(int(data["size"]))
        for service_id, fields in dict(data.get("update") or {}).items():
            self.update_service(int(service_id), **fields)
        if "remove" in data:
            self.remove_services(int(i) for i in data["remove"])
        return {"ok": True, "count": len(self.store.services())}

    def _control_keys(self, query: dict[str, str], data: dict[str, Any]) -> Any:
        self.set_balance(str(data["key"]), Decimal(str(data["balance"])))
        return {"ok": True, "keys": self.store.keys()}

    def _control_speed(self, query: dict[str, str], data: dict[str, Any]) -> Any:
        self.set_speed(float(data["step_seconds"]))
        return {"ok": True, "step_seconds": self.step_seconds}


_ControlRoute = Callable[[SandboxServer, dict[str, str], dict[str, Any]], Any]

_CONTROL_ROUTES: dict[tuple[str, str], _ControlRoute] = {
    ("GET", "health"): lambda s, q, d: {"ok": True, "url": s.url, "key": s.key,
                                        "step_seconds": s.step_seconds,
                                        "services": len(s.store.services())},
    ("GET", "fault"): lambda s, q, d: {"faults": s.faults.listing()},
    ("POST", "fault"): SandboxServer._control_set_fault,
    ("DELETE", "fault"): SandboxServer._control_clear_faults,
    ("GET", "quirk"): lambda s, q, d: {"quirks": sorted(s.api.quirks)},
    ("POST", "quirk"): SandboxServer._control_set_quirk,
    ("DELETE", "quirk"): SandboxServer._control_clear_quirks,
    ("GET", "keys"): lambda s, q, d: {"keys": s.store.keys()},
    ("POST", "keys"): SandboxServer._control_keys,
    ("GET", "adds"): lambda s, q, d: s.adds(q.get("key") or None),
    ("GET", "catalog"): lambda s, q, d: s.services(),
    ("POST", "catalog"): SandboxServer._control_catalog,
    ("GET", "speed"): lambda s, q, d: {"step_seconds": s.step_seconds},
    ("POST", "speed"): SandboxServer._control_speed,
}
