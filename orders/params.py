"""Validate and normalise the parameters of an API v2 `add`, by service type.

SERVICE_TYPE_SPECS is the one table of the 14 types and their fields (name, label, kind,
required, help, bounds): the readers below, the new-order form, the API page and the OpenAPI
description are all made from it.

`parse_order()` takes what a customer sent (a form POST, a JSON body or a Python call) and the
service's type and limits, and returns an `OrderRequest`: the per-run quantity that the service's
min/max bound, the units the price applies to, and the exact parameters to send upstream. Every
client error raises `Refusal` (orders/errors.py) whose `.message` is the API v2 error text the
client sees.
Pure Python on purpose: no database and no Django, so the API, the web form and the tests share it.

Charging model (charge = rate * charged_units / 1000, except the flat types):

- Package, Custom Comments Package: flat, charge = rate; charged_units = 1.
- Custom Comments, Comment Replies: one unit per non-empty comment line; Mentions Custom List:
  one per username. That count is the quantity and must lie within the service's min/max.
- Default with drip-feed: `quantity` is per run and bounded per run; charged_units =
  quantity * runs.
- Subscriptions: upstream delivers between `min` and `max` per post and nobody knows in advance
  how much, so the customer pays up front for the worst case: `max` per post, for `posts +
  old_posts` posts, charged_units = max * (posts + old_posts); the undelivered part comes back
  through the usual Partial/Canceled refunds. The protocol allows a subscription without
  `posts` ("created for an unlimited number of posts"), but an unlimited charge cannot be paid
  up front: such a subscription covers `default_posts` new posts (the panel's
  SUBSCRIPTION_DEFAULT_POSTS), is charged for them and sends that `posts` upstream.
- Every other type: charged_units = quantity.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlsplit

from orders.errors import (
    BAD_LINK,
    BAD_REQUEST,
    Refusal,
    quantity_above,
    quantity_below,
)

SUBSCRIPTION_DELAYS: tuple[int, ...] = (
    0, 5, 10, 15, 30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 360, 420, 480, 540, 600,
)


MAX_LINK_CHARS = 1000
MAX_TEXT_CHARS = 500  # a single text parameter, or one line of a list
MAX_LINES = 10_000
# Longer raw list text cannot hold MAX_LINES full lines with their line breaks; refusing it by its
# length first means a huge body costs one len() instead of a split into millions of lines.
MAX_LIST_CHARS = MAX_LINES * (MAX_TEXT_CHARS + 2)
MAX_DIGITS = 12
MAX_NUMBER = 10**MAX_DIGITS - 1
MIN_RUNS, MAX_RUNS = 2, 1000
MAX_INTERVAL_MINUTES = 7 * 24 * 60
MAX_POSTS = 10_000
# The new posts a subscription sent without `posts` covers, unless the caller says otherwise
# (placing passes settings.SUBSCRIPTION_DEFAULT_POSTS, whose default this is).
DEFAULT_POSTS = 30
MAX_ANSWER_NUMBER = 1000

_DIGITS = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")  # ASCII only: "²".isdigit() but int("²") fails
# Control characters would split or corrupt the one-per-line lists upstream, and lone surrogates
# (which JSON can carry) cannot be encoded into the request body at all. Tabs are harmless.
_FORBIDDEN_IN_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_FORBIDDEN_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_DAY_MONTH_YEAR = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
# str() of an int beyond ~4300 digits raises; no valid value is anywhere near this long.
_MAX_INT_BITS = 2000


def gettext_noop(text: str) -> str:
    """Marks a label or help text for translation (makemessages finds it by this name) without
    importing Django here: the pages translate it when they show it."""
    return text


# The kinds of field a type's parameter can be; each page renders its own input for a kind.
URL, NUMBER, TEXT, LINES, CHOICE, DATE = "url", "number", "text", "lines", "choice", "date"


@dataclass(frozen=True)
class TypeField:
    """One parameter of `add` for a service type: the validation, the new-order form, the API
    page and the OpenAPI description are all made from these."""

    name: str  # the API v2 parameter
    label: str
    kind: str  # URL, NUMBER, TEXT, LINES, CHOICE or DATE
    help: str
    required: bool = True
    # Bounds of a NUMBER (inclusive); None: the service's own min/max bound it instead.
    low: int | None = None
    high: int | None = None
    choices: tuple[int, ...] = ()  # the only values a CHOICE takes
    dripfeed: bool = False  # only on services that offer drip-feed
    # The quantity min/max bound: the number itself, or for LINES the number of lines.
    bounded_by_service: bool = False


@dataclass(frozen=True)
class TypeSpec:
    name: str
    fields: tuple[TypeField, ...]  # besides key, action=add and service
    # Where the quantity that min/max bound comes from: a field's name, or "" for flat types.
    quantity_from: str
    charged: str  # the units the rate (per 1000) applies to, in words

    @property
    def is_flat(self) -> bool:
        return self.quantity_from == ""


_LINK = TypeField("link", gettext_noop("Link"), URL, gettext_noop("Link to the page"),
                  high=MAX_LINK_CHARS)
_QUANTITY = TypeField("quantity", gettext_noop("Quantity"), NUMBER,
                      gettext_noop("Needed quantity"),
                      bounded_by_service=True)
_RUNS = TypeField("runs", gettext_noop("Runs"), NUMBER,
                  gettext_noop("Runs to deliver (drip-feed; only on services that offer it)"),
                  required=False, low=MIN_RUNS, high=MAX_RUNS, dripfeed=True)
_INTERVAL = TypeField("interval", gettext_noop("Interval (minutes)"), NUMBER,
                      gettext_noop("Interval in minutes between runs (drip-feed)"),
                      required=False, low=1, high=MAX_INTERVAL_MINUTES, dripfeed=True)
def _lines_field(name: str, label: str, help_text: str, counted: bool = False) -> TypeField:
    return TypeField(name, label, LINES, help_text, bounded_by_service=counted)


_COMMENTS = _lines_field("comments", gettext_noop("Comments"),
                         gettext_noop("Comments, one per line"))
_COUNTED_COMMENTS = _lines_field(
    "comments", gettext_noop("Comments"),
    gettext_noop("Comments, one per line; each line is one unit of the quantity"), counted=True)
_USERNAMES = _lines_field("usernames", gettext_noop("Usernames"),
                          gettext_noop("Usernames, one per line"))


def _text_field(name: str, label: str, help_text: str) -> TypeField:
    return TypeField(name, label, TEXT, help_text, high=MAX_TEXT_CHARS)


def _url_field(name: str, label: str, help_text: str) -> TypeField:
    return TypeField(name, label, URL, help_text, high=MAX_TEXT_CHARS)


_PER_QUANTITY = gettext_noop("quantity")
_FLAT_CHARGE = gettext_noop("flat: the charge is the rate")

SERVICE_TYPE_SPECS: tuple[TypeSpec, ...] = (
    TypeSpec("Default", (_LINK, _QUANTITY, _RUNS, _INTERVAL), "quantity",
             gettext_noop("quantity; with drip-feed, quantity × runs")),
    TypeSpec("Package", (_LINK,), "", _FLAT_CHARGE),
    TypeSpec("Custom Comments", (_LINK, _COUNTED_COMMENTS), "comments",
             gettext_noop("the number of non-empty comment lines")),
    TypeSpec("Custom Comments Package", (_LINK, _COMMENTS), "", _FLAT_CHARGE),
    TypeSpec("Mentions with Hashtags", (
        _LINK, _QUANTITY, _USERNAMES,
        _lines_field("hashtags", gettext_noop("Hashtags"), gettext_noop("Hashtags, one per line")),
    ), "quantity", _PER_QUANTITY),
    TypeSpec("Mentions Custom List", (
        _LINK, _lines_field("usernames", gettext_noop("Usernames"),
                            gettext_noop("Usernames, one per line; each is one unit of the "
                                         "quantity"), counted=True),
    ), "usernames", gettext_noop("the number of usernames")),
    TypeSpec("Mentions Hashtag", (
        _LINK, _QUANTITY,
        _text_field("hashtag", gettext_noop("Hashtag"),
                    gettext_noop("Hashtag to scrape usernames from")),
    ), "quantity", _PER_QUANTITY),
    TypeSpec("Mentions User Followers", (
        _LINK, _QUANTITY,
        _url_field("username", gettext_noop("Followers of"),
                   gettext_noop("URL of the account to scrape followers from")),
    ), "quantity", _PER_QUANTITY),
    TypeSpec("Mentions Media Likers", (
        _LINK, _QUANTITY,
        _url_field("media", gettext_noop("Media URL"),
                   gettext_noop("Media URL to scrape likers from")),
    ), "quantity", _PER_QUANTITY),
    TypeSpec("Subscriptions", (
        _text_field("username", gettext_noop("Username"),
                    gettext_noop("Username of the account whose new posts get the service")),
        TypeField("min", gettext_noop("Quantity min (per post)"), NUMBER,
                  gettext_noop("Least quantity delivered to each post"),
                  bounded_by_service=True),
        TypeField("max", gettext_noop("Quantity max (per post)"), NUMBER,
                  gettext_noop("Most quantity delivered to each post; you pay for this much"),
                  bounded_by_service=True),
        TypeField("posts", gettext_noop("New posts"), NUMBER,
                  gettext_noop("Number of new (future) posts to deliver to; left out, the "
                               "panel's default number of posts, paid up front"),
                  required=False, low=1, high=MAX_POSTS),
        TypeField("old_posts", gettext_noop("Existing posts"), NUMBER,
                  gettext_noop("Number of existing posts to deliver to, where the service "
                               "offers it"), required=False, low=0, high=MAX_POSTS),
        TypeField("delay", gettext_noop("Delay (minutes)"), CHOICE,
                  gettext_noop("Minutes to wait after a post before delivering"),
                  choices=SUBSCRIPTION_DELAYS),
        TypeField("expiry", gettext_noop("Expiry date"), DATE,
                  gettext_noop("Last day of the subscription"), required=False),
    ), "max", gettext_noop("max × (posts + old_posts), paid up front; the undelivered part is "
                           "refunded")),
    TypeSpec("Comment Likes", (
        _LINK, _QUANTITY,
        _text_field("username", gettext_noop("Comment owner"),
                    gettext_noop("Username of the comment owner")),
    ), "quantity", _PER_QUANTITY),
    TypeSpec("Comment Replies", (
        _LINK,
        _text_field("username", gettext_noop("Username"),
                    gettext_noop("Username of the comment owner")),
        _COUNTED_COMMENTS,
    ), "comments", gettext_noop("the number of comment lines")),
    TypeSpec("Poll", (
        _LINK, _QUANTITY,
        TypeField("answer_number", gettext_noop("Answer number"), NUMBER,
                  gettext_noop("Answer number of the poll"), low=1, high=MAX_ANSWER_NUMBER),
    ), "quantity", _PER_QUANTITY),
    TypeSpec("Invites from Groups", (
        _LINK, _QUANTITY,
        _lines_field("groups", gettext_noop("Groups"), gettext_noop("Groups, one per line")),
    ), "quantity", _PER_QUANTITY),
)
TYPE_SPECS: dict[str, TypeSpec] = {spec.name: spec for spec in SERVICE_TYPE_SPECS}
SERVICE_TYPES: tuple[str, ...] = tuple(TYPE_SPECS)
# charge = rate, not rate * quantity / 1000
FLAT_TYPES: frozenset[str] = frozenset(spec.name for spec in SERVICE_TYPE_SPECS if spec.is_flat)


@dataclass(frozen=True)
class OrderRequest:
    """An order's parameters, validated and normalised for one service type."""

    link: str  # "" for Subscriptions (they have username instead)
    quantity: int  # per-run quantity, what min/max bound; 1 for flat types; `max` for Subscriptions
    runs: int | None  # drip-feed runs, None when not drip-feed
    interval: int | None  # drip-feed interval in minutes
    charged_units: int  # the units the price applies to (see the module docstring)
    extra: dict[str, str]  # the type's other upstream parameters, in API v2 form
    service_type: str = field(kw_only=True)

    def upstream_params(self) -> dict[str, str]:
        """Everything to send upstream in `add` besides key, action and service."""
        params: dict[str, str] = {}
        if self.link:
            params["link"] = self.link
        if self.service_type in _TYPES_WITH_QUANTITY:
            params["quantity"] = str(self.quantity)
        if self.runs is not None and self.interval is not None:
            params["runs"] = str(self.runs)
            params["interval"] = str(self.interval)
        params.update(self.extra)
        return params


@dataclass(frozen=True)
class _Context:
    params: Mapping[str, object]
    min_quantity: int
    max_quantity: int
    dripfeed: bool
    today: date
    default_posts: int = DEFAULT_POSTS


def parse_id(value: object) -> int | None:
    """A service, order or refill id as a client wrote it: a positive whole number that fits
    a bigint, ASCII digits only ("²".isdigit() is true but int("²") raises), else None."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if 0 < number < 2**63 else None


def parse_order(
    service_type: str,
    params: Mapping[str, object],
    *,
    min_quantity: int,
    max_quantity: int,
    dripfeed: bool,
    today: date | None = None,
    default_posts: int = DEFAULT_POSTS,
) -> OrderRequest:
    """Validate an `add` for a service of `service_type`; raises Refusal for the client.

    `default_posts` is how many new posts a subscription sent without `posts` covers. An
    unknown `service_type` or a `default_posts` outside 1..MAX_POSTS is a programming error
    and raises a plain ValueError.
    """
    if service_type not in SERVICE_TYPES:
        raise ValueError(f"unknown service type: {service_type!r}")
    if not 1 <= default_posts <= MAX_POSTS:
        raise ValueError(f"default_posts must be within 1..{MAX_POSTS}: {default_posts}")
    ctx = _Context(params, min_quantity, max_quantity, dripfeed,
                   today if today is not None else date.today(), default_posts)
    if service_type == "Subscriptions":
        return _parse_subscription(ctx)
    return _parse_linked(service_type, ctx)


# --- reading raw values ---------------------------------------------------------------------


def _bad_request(field: str = "") -> Refusal:
    return Refusal(BAD_REQUEST, field)


def _as_text(value: object, name: str = "") -> str | None:
    """One raw value as text, None when missing; only str and int are values a client can send."""
    if value is None:
        return None
    # bool is an int subclass, but True is no quantity: only a Python caller's bug sends it.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _bad_request(name)
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise _bad_request(name)
        return str(value)
    return value


def _scalar(params: Mapping[str, object], name: str) -> str | None:
    """A single-valued parameter, stripped; None when missing or blank."""
    value = params.get(name)
    if isinstance(value, list | tuple):
        # A key sent once may arrive as a one-item list (QueryDict.lists()); twice is ambiguous.
        if len(value) > 1:
            raise _bad_request(name)
        value = value[0] if value else None
    text = _as_text(value, name)
    if text is None:
        return None
    return text.strip() or None


def _required(params: Mapping[str, object], name: str) -> str:
    text = _scalar(params, name)
    if text is None:
        raise _bad_request(name)
    return text


def _lines(params: Mapping[str, object], name: str) -> list[str]:
    """A list parameter: text with one item per line, or a list of such texts; blanks dropped."""
    value = params.get(name)
    parts = value if isinstance(value, list | tuple) else [value]
    if len(parts) > MAX_LIST_CHARS:
        raise _bad_request(name)
    raw = "\n".join(text for text in (_as_text(part, name) for part in parts) if text is not None)
    if len(raw) > MAX_LIST_CHARS:
        raise _bad_request(name)
    # str.splitlines() would also split on \f, \x1c, \u2028 and more: API v2 means \n and \r\n.
    breaks_unified = raw.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line for line in map(str.strip, breaks_unified.split("\n")) if line]
    if len(lines) > MAX_LINES:
        raise _bad_request(name)
    for line in lines:
        _check_text(line, name)
    return lines


def _check_text(text: str, name: str) -> str:
    if len(text) > MAX_TEXT_CHARS or _FORBIDDEN_IN_TEXT.search(text):
        raise _bad_request(name)
    return text


def _whole_number(text: str, low: int, high: int, name: str = "") -> int:
    """Digits only (no sign, no decimals, at most MAX_DIGITS), within [low, high]."""
    if not _DIGITS.fullmatch(text):
        raise _bad_request(name)
    number = int(text)
    if not low <= number <= high:
        raise _bad_request(name)
    return number


def _optional_number(params: Mapping[str, object], name: str, low: int, high: int) -> int | None:
    text = _scalar(params, name)
    return None if text is None else _whole_number(text, low, high, name)


def _is_web_url(text: str, max_chars: int) -> bool:
    if len(text) > max_chars or _FORBIDDEN_IN_URL.search(text):
        return False
    try:
        parts = urlsplit(text)
        # .port raises ValueError for a non-numeric or out-of-range port, so it is read here.
        return (parts.scheme in ("http", "https") and bool(parts.hostname)
                and (parts.port is None or parts.port > 0))
    except ValueError:  # e.g. an unbalanced "[" in the host, or a host that NFKC changes
        return False


def _within_bounds(quantity: int, ctx: _Context, name: str = "quantity") -> int:
    if quantity < ctx.min_quantity:
        raise Refusal(quantity_below(ctx.min_quantity), name)
    if quantity > ctx.max_quantity:
        raise Refusal(quantity_above(ctx.max_quantity), name)
    return quantity


# --- the types' own parameters --------------------------------------------------------------


def _read_text(params: Mapping[str, object], name: str) -> str:
    return _check_text(_required(params, name), name)


def _read_url(params: Mapping[str, object], name: str) -> str:
    # A bad scrape-source URL is not the order's link, so real panels answer the generic error.
    text = _required(params, name)
    if not _is_web_url(text, MAX_TEXT_CHARS):
        raise _bad_request(name)
    return text


def _read_list(params: Mapping[str, object], name: str) -> str:
    lines = _lines(params, name)
    if not lines:
        raise _bad_request(name)
    return "\n".join(lines)


_Reader = Callable[[Mapping[str, object], str], str]

_READERS: dict[str, _Reader] = {"text": _read_text, "url": _read_url, "lines": _read_list}
# `link`, `quantity` and drip-feed are read by _parse_linked itself; every other field of a
# linked type is read by its kind.
_COMMON_FIELDS = frozenset({"link", "quantity", "runs", "interval"})


def _own_reader(spec_field: TypeField) -> _Reader:
    if spec_field.kind == NUMBER:
        low, high = spec_field.low or 0, spec_field.high or MAX_NUMBER
        return lambda params, name: str(_whole_number(_required(params, name), low, high, name))
    return _READERS[spec_field.kind]


# Each linked type's parameters besides link, quantity and drip-feed, with their readers.
_OWN_PARAMS: dict[str, tuple[tuple[str, _Reader], ...]] = {
    spec.name: tuple((f.name, _own_reader(f)) for f in spec.fields
                     if f.name not in _COMMON_FIELDS)
    for spec in SERVICE_TYPE_SPECS if spec.name != "Subscriptions"
}
_QUANTITY_SOURCE: dict[str, str] = {spec.name: spec.quantity_from for spec in SERVICE_TYPE_SPECS}
_TYPES_WITH_QUANTITY = frozenset(
    kind for kind, source in _QUANTITY_SOURCE.items() if source == "quantity"
)


def _parse_linked(service_type: str, ctx: _Context) -> OrderRequest:
    """Every type but Subscriptions: a link, the type's own parameters, a bounded quantity."""
    link = _required(ctx.params, "link")
    if not _is_web_url(link, MAX_LINK_CHARS):
        raise Refusal(BAD_LINK, "link")
    extra = {name: read(ctx.params, name) for name, read in _OWN_PARAMS[service_type]}
    quantity = _type_quantity(service_type, ctx, extra)
    runs, interval = _dripfeed(ctx) if service_type == "Default" else (None, None)
    return OrderRequest(
        link=link, quantity=quantity, runs=runs, interval=interval,
        charged_units=quantity * (runs or 1), extra=extra, service_type=service_type,
    )


def _type_quantity(service_type: str, ctx: _Context, extra: Mapping[str, str]) -> int:
    source = _QUANTITY_SOURCE[service_type]
    if source == "":  # a flat type
        return 1
    if source == "quantity":
        number = _whole_number(_required(ctx.params, source), 1, MAX_NUMBER, source)
        return _within_bounds(number, ctx)
    # A normalised list holds non-empty lines joined by "\n", so it has one more line than breaks.
    return _within_bounds(extra[source].count("\n") + 1, ctx, source)


def _is_zero_or_missing(text: str | None) -> bool:
    return text is None or (_DIGITS.fullmatch(text) is not None and int(text) == 0)


def _dripfeed(ctx: _Context) -> tuple[int | None, int | None]:
    """Drip-feed runs and interval, or (None, None) when the order is not drip-fed."""
    runs_text, interval_text = _scalar(ctx.params, "runs"), _scalar(ctx.params, "interval")
    # Many clients send runs=0 / interval=0 (or blanks) when they mean "no drip-feed".
    if _is_zero_or_missing(runs_text) and _is_zero_or_missing(interval_text):
        return None, None
    if not ctx.dripfeed or runs_text is None or interval_text is None:
        raise _bad_request("runs" if runs_text is None or not ctx.dripfeed else "interval")
    runs = _whole_number(runs_text, MIN_RUNS, MAX_RUNS, "runs")
    interval = _whole_number(interval_text, 1, MAX_INTERVAL_MINUTES, "interval")
    return runs, interval


# --- Subscriptions --------------------------------------------------------------------------


def _parse_subscription(ctx: _Context) -> OrderRequest:
    params = ctx.params
    username = _read_text(params, "username")
    low = _whole_number(_required(params, "min"), 1, MAX_NUMBER, "min")
    high = _whole_number(_required(params, "max"), 1, MAX_NUMBER, "max")
    delay = _whole_number(_required(params, "delay"), 0, max(SUBSCRIPTION_DELAYS), "delay")
    if delay not in SUBSCRIPTION_DELAYS:
        raise _bad_request("delay")
    if low > high:
        raise _bad_request("max")
    _within_bounds(low, ctx, "min")
    _within_bounds(high, ctx, "max")
    # Without `posts` upstreams run for every future post; the default keeps the charge
    # bounded, and what is not delivered comes back through the Partial/Canceled refunds.
    posts = _optional_number(params, "posts", 1, MAX_POSTS) or ctx.default_posts
    old_posts = _optional_number(params, "old_posts", 0, MAX_POSTS)
    expiry = _expiry(params, ctx.today)
    covered_posts = posts + (old_posts or 0)
    optional = {"posts": posts, "old_posts": old_posts}
    extra = {"username": username, "min": str(low), "max": str(high), "delay": str(delay)}
    extra.update({name: str(value) for name, value in optional.items() if value is not None})
    if expiry is not None:
        extra["expiry"] = f"{expiry.day:02d}/{expiry.month:02d}/{expiry.year:04d}"
    return OrderRequest(
        link="", quantity=high, runs=None, interval=None,
        charged_units=high * covered_posts, extra=extra, service_type="Subscriptions",
    )


def _expiry(params: Mapping[str, object], today: date) -> date | None:
    """`expiry` as d/m/Y (zero-padded or not); the day itself still counts as not past."""
    text = _scalar(params, "expiry")
    if text is None:
        return None
    # Our own pattern rather than strptime, whose \d also takes non-ASCII digits.
    match = _DAY_MONTH_YEAR.fullmatch(text)
    if match is None:
        raise _bad_request("expiry")
    day, month, year = (int(group) for group in match.groups())
    try:
        expiry = date(year, month, day)
    except ValueError:
        raise _bad_request("expiry") from None
    if expiry < today:
        raise _bad_request("expiry")
    return expiry
