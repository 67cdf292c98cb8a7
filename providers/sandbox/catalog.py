"""The sandbox provider's catalog: a realistic demo catalog and a synthetic one of any size."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

SERVICE_TYPES: tuple[str, ...] = (
    "Default",
    "Package",
    "Custom Comments",
    "Custom Comments Package",
    "Mentions with Hashtags",
    "Mentions Custom List",
    "Mentions Hashtag",
    "Mentions User Followers",
    "Mentions Media Likers",
    "Subscriptions",
    "Comment Likes",
    "Comment Replies",
    "Poll",
    "Invites from Groups",
)

# Types whose charge is the flat rate, whatever the quantity.
FLAT_TYPES = frozenset({"Package", "Custom Comments Package"})


@dataclass(frozen=True)
class Service:
    """One catalog entry; `rate` is kept as the exact string the API shows (USD per 1000)."""

    id: int
    name: str
    kind: str
    category: str
    rate: str
    min_qty: int
    max_qty: int
    refill: bool = False
    cancel: bool = False
    dripfeed: bool = False
    refill_days: int = 30
    description: str = ""

    def to_api(self) -> dict[str, Any]:
        return {
            "service": self.id,
            "name": self.name,
            "type": self.kind,
            "category": self.category,
            "rate": self.rate,
            "min": str(self.min_qty),
            "max": str(self.max_qty),
            "refill": self.refill,
            "cancel": self.cancel,
            "dripfeed": self.dripfeed,
            "description": self.description,
        }


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _rate(value: Any) -> str:
    # Accept numbers from JSON but keep strings verbatim: the API echoes the rate as given.
    text = value if isinstance(value, str) else str(value)
    try:
        Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"bad rate {value!r}") from exc
    return text


def service_from_dict(raw: Mapping[str, Any]) -> Service:
    """A Service from API-shaped input (`service`, `type`, `min`, `max`…), as control sends."""
    return Service(
        id=int(raw.get("service", raw.get("id", 0))),
        name=str(raw.get("name", "")),
        kind=str(raw.get("type", raw.get("kind", "Default"))),
        category=str(raw.get("category", "")),
        rate=_rate(raw.get("rate", "1")),
        min_qty=int(raw.get("min", raw.get("min_qty", 1))),
        max_qty=int(raw.get("max", raw.get("max_qty", 10000))),
        refill=_flag(raw.get("refill", False)),
        cancel=_flag(raw.get("cancel", False)),
        dripfeed=_flag(raw.get("dripfeed", False)),
        refill_days=int(raw.get("refill_days", 30)),
        description=str(raw.get("description", "")),
    )


def _s(
    sid: int, category: str, name: str, kind: str, rate: str, lo: int, hi: int, flags: str = "",
    days: int = 30, description: str = "",
) -> Service:
    # flags: r = refill, c = cancel, d = drip-feed; keeps the table below one line per service.
    return Service(
        id=sid, name=name, kind=kind, category=category, rate=rate, min_qty=lo, max_qty=hi,
        refill="r" in flags, cancel="c" in flags, dripfeed="d" in flags, refill_days=days,
        description=description or _describe(kind, lo, hi, "r" in flags, days),
    )


def _describe(kind: str, lo: int, hi: int, refill: bool, days: int) -> str:
    refill_text = ("lifetime refill" if days == 0 else f"{days} days refill") if refill else (
        "no refill"
    )
    if kind in FLAT_TYPES:
        return f"Flat price package. Start 0-6 hours, {refill_text}."
    return f"Start 0-1 hour. Min {lo}, max {hi}. {refill_text.capitalize()}. Link must be public."


def default_catalog() -> list[Service]:
    """About 40 services over the usual platforms, covering every API v2 service type."""
    return [
        _s(101, "Instagram Followers", "Instagram Followers [Real Mixed] [Refill 30D] [Max 100K]",
           "Default", "1.85", 50, 100000, "rc"),
        _s(102, "Instagram Followers", "Instagram Followers [HQ] [No Refill] [Start 0-1H]",
           "Default", "0.90", 50, 10000, "c"),
        _s(103, "Instagram Followers", "Instagram Followers [Premium] [Lifetime Refill]",
           "Default", "3.40", 100, 250000, "rc", days=0),
        _s(111, "Instagram Likes", "Instagram Likes [Real] [Instant] [Max 50K]",
           "Default", "0.21", 10, 50000, "cd"),
        _s(112, "Instagram Likes", "Instagram Likes [Power] [Refill 30D] [20K/Day]",
           "Default", "0.48", 20, 100000, "rd"),
        _s(121, "Instagram Views", "Instagram Reels Views [Instant] [Max 10M]",
           "Default", "0.012", 100, 10000000, "d"),
        _s(122, "Instagram Views", "Instagram Story Views [All Stories] [Max 20K]",
           "Default", "0.35", 100, 20000, ""),
        _s(131, "Instagram Comments", "Instagram Custom Comments [Real Accounts]",
           "Custom Comments", "12.50", 5, 500, "c"),
        _s(132, "Instagram Comments", "Instagram Custom Comments Package [10 Comments]",
           "Custom Comments Package", "4.20", 1, 1, ""),
        _s(133, "Instagram Comments", "Instagram Comment Likes [Real] [Max 5K]",
           "Comment Likes", "4.80", 20, 5000, "c"),
        _s(134, "Instagram Comments", "Instagram Comment Replies [Custom]",
           "Comment Replies", "15.00", 5, 200, ""),
        _s(141, "Instagram Mentions", "Instagram Mentions [Custom List]",
           "Mentions Custom List", "6.00", 10, 10000, ""),
        _s(142, "Instagram Mentions", "Instagram Mentions [Hashtag Users]",
           "Mentions Hashtag", "4.50", 1000, 50000, "c"),
        _s(143, "Instagram Mentions", "Instagram Mentions [User Followers]",
           "Mentions User Followers", "4.50", 1000, 50000, "c"),
        _s(144, "Instagram Mentions", "Instagram Mentions [Media Likers]",
           "Mentions Media Likers", "4.80", 1000, 50000, "c"),
        _s(145, "Instagram Mentions", "Instagram Mentions with Hashtags",
           "Mentions with Hashtags", "5.20", 1000, 20000, ""),
        _s(151, "Instagram Auto Likes", "Instagram Auto Likes [Future Posts] [Real]",
           "Subscriptions", "0.65", 50, 10000, ""),
        _s(152, "Instagram Auto Likes", "Instagram Auto Views [Future Posts]",
           "Subscriptions", "0.05", 100, 100000, ""),
        _s(161, "Instagram Packages", "Instagram Starter Package [1K Followers + 500 Likes]",
           "Package", "9.90", 1, 1, ""),
        _s(201, "TikTok Followers", "TikTok Followers [Real] [Refill 30D]",
           "Default", "2.40", 100, 200000, "rc"),
        _s(202, "TikTok Followers", "TikTok Followers [Cheapest] [No Refill]",
           "Default", "1.10", 50, 20000, "c"),
        _s(211, "TikTok Likes", "TikTok Likes [Instant] [Max 100K]",
           "Default", "0.35", 50, 100000, "cd"),
        _s(221, "TikTok Views", "TikTok Video Views [Instant] [Max 100M]",
           "Default", "0.006", 100, 100000000, "d"),
        _s(231, "TikTok Comments", "TikTok Custom Comments",
           "Custom Comments", "9.00", 10, 1000, ""),
        _s(241, "TikTok Shares", "TikTok Shares [Max 1M]", "Default", "0.40", 100, 1000000, "c"),
        _s(301, "YouTube Views", "YouTube Views [Non Drop] [Lifetime Refill]",
           "Default", "1.60", 500, 1000000, "rd", days=0),
        _s(311, "YouTube Subscribers", "YouTube Subscribers [Refill 30D] [50-100/Day]",
           "Default", "22.00", 50, 20000, "rc"),
        _s(321, "YouTube Likes", "YouTube Likes [Refill 30D]", "Default", "1.90", 20, 50000, "r"),
        _s(331, "YouTube Comments", "YouTube Custom Comments [USA]",
           "Custom Comments", "28.00", 5, 500, ""),
        _s(332, "YouTube Comments", "YouTube Comment Likes",
           "Comment Likes", "3.20", 20, 10000, ""),
        _s(333, "YouTube Comments", "YouTube Comment Replies [Custom]",
           "Comment Replies", "30.00", 5, 200, ""),
        _s(341, "YouTube Packages", "YouTube Watch Time [1000 Hours Package]",
           "Package", "34.00", 1, 1, ""),
        _s(401, "Telegram Members", "Telegram Channel Members [Refill 30D]",
           "Default", "1.45", 100, 100000, "rcd"),
        _s(402, "Telegram Members", "Telegram Group Members [Invites from Groups]",
           "Invites from Groups", "3.80", 500, 50000, "c"),
        _s(411, "Telegram Views", "Telegram Post Views [Last Post]",
           "Default", "0.015", 100, 1000000, "d"),
        _s(412, "Telegram Views", "Telegram Auto Post Views [Future Posts]",
           "Subscriptions", "0.02", 100, 200000, ""),
        _s(421, "Telegram Polls", "Telegram Poll Votes [Any Answer]",
           "Poll", "2.50", 50, 50000, "c"),
        _s(431, "Telegram Reactions", "Telegram Positive Reactions [Mixed]",
           "Default", "0.30", 10, 100000, ""),
        _s(501, "Facebook Page Likes", "Facebook Page Likes + Followers [Refill 30D]",
           "Default", "3.10", 100, 100000, "rc"),
        _s(511, "Facebook Post Likes", "Facebook Post Likes [Real Profiles]",
           "Default", "1.20", 50, 50000, "c"),
        _s(521, "Facebook Comments", "Facebook Custom Comments [Real Profiles]",
           "Custom Comments", "14.00", 5, 1000, ""),
        _s(522, "Facebook Comments", "Facebook Custom Comments Package [5 Comments]",
           "Custom Comments Package", "2.60", 1, 1, ""),
        _s(531, "Facebook Polls", "Facebook Poll Votes", "Poll", "3.90", 100, 20000, ""),
        _s(601, "Twitter Followers", "X (Twitter) Followers [Refill 30D]",
           "Default", "4.20", 100, 50000, "rc"),
        _s(611, "Twitter Likes", "X (Twitter) Likes [Real]", "Default", "1.30", 50, 20000, "c"),
        _s(621, "Twitter Retweets", "X (Twitter) Retweets", "Default", "1.50", 20, 20000, ""),
        _s(631, "Twitter Views", "X (Twitter) Tweet Views [Instant]",
           "Default", "0.02", 100, 10000000, "d"),
        _s(641, "Twitter Polls", "X (Twitter) Poll Votes", "Poll", "1.80", 100, 100000, ""),
        _s(701, "Spotify Plays", "Spotify Plays [Premium Accounts] [Lifetime Refill]",
           "Default", "1.25", 1000, 10000000, "rd", days=0),
        _s(711, "Spotify Followers", "Spotify Artist Followers",
           "Default", "0.95", 100, 500000, "c"),
        _s(721, "Spotify Listeners", "Spotify Monthly Listeners [USA]",
           "Default", "2.20", 500, 200000, ""),
    ]


_PLATFORMS = ("Instagram", "TikTok", "YouTube", "Telegram", "Facebook", "Twitter", "Spotify",
              "Twitch", "Discord", "Threads", "LinkedIn", "SoundCloud")
_PRODUCTS = ("Followers", "Likes", "Views", "Comments", "Shares", "Saves", "Reactions",
             "Members", "Plays", "Reposts")
_QUALITIES = ("Real", "HQ", "Mixed", "Premium", "Cheapest", "Instant", "Non Drop", "USA")
_MINS = (10, 20, 50, 100, 500, 1000)
_MAXES = (1000, 5000, 10000, 50000, 100000, 1000000)


def _h(n: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"svc:{n}".encode(), digest_size=8).digest(), "big")


def synthetic_service(n: int) -> Service:
    """Service number n of a synthetic catalog: deterministic, varied, every 20th a non-Default."""
    h = _h(n)
    platform = _PLATFORMS[n % len(_PLATFORMS)]
    product = _PRODUCTS[(n // len(_PLATFORMS)) % len(_PRODUCTS)]
    kind = SERVICE_TYPES[1 + (n // 20) % (len(SERVICE_TYPES) - 1)] if n % 20 == 0 else "Default"
    lo, hi = (1, 1) if kind in FLAT_TYPES else (_MINS[h % 6], _MAXES[(h >> 8) % 6])
    rate = Decimal(5 + (h >> 16) % 40000) / 1000
    quality = _QUALITIES[(h >> 32) % len(_QUALITIES)]
    return _s(
        n, f"{platform} {product}", f"{platform} {product} [{quality}] [S{n}]", kind,
        f"{rate:.3f}", lo, max(lo, hi), ("r" if h % 3 == 0 else "") + ("c" if h % 2 else "")
        + ("d" if kind == "Default" and h % 5 == 0 else ""),
    )


def synthetic_catalog(size: int) -> list[Service]:
    """A catalog of `size` services with ids 1..size, for catalog-sync benchmarks."""
    return [synthetic_service(n) for n in range(1, size + 1)]
