"""Unexpected exceptions to Sentry when SENTRY_DSN is set, never with a secret in them.

Events carry the request (an API v2 call's `key` in its form or query string), stack frames'
local variables (a provider's key on its way into a request), breadcrumbs and log messages.
scrub_event walks all of it before anything leaves: values under a sensitive name are
replaced, `key=…` pairs in text are cut, and long runs of hex (our API keys are 64 hex
characters, many upstreams' keys 32) are masked wherever they appear. Imported by settings:
nothing from Django here.
"""

from __future__ import annotations

import re
from typing import Any

FILTERED = "[Filtered]"
# A mapping key (a form field, a header, a local variable) whose value is never sent.
_SENSITIVE_NAME = re.compile(
    r"(^|[_\-.])(key|keys|api_?key|apikey|password|passwd|secret|token|authorization|cookie|"
    r"csrf\w*|session\w*|sessionid|dsn|plaintext|encrypted)($|[_\-.])", re.IGNORECASE)
# `key=…`, `"key": "…"`, `api_key: …` inside text (a URL, a log line, a repr).
_SECRET_PAIR = re.compile(
    r"""(?P<name>\b(?:api_?key|key|token|password|secret)\b["']?\s*[=:]\s*["']?)"""
    r"""(?P<value>[^\s&"',;)}\]]+)""", re.IGNORECASE)
_LONG_HEX = re.compile(r"\b[0-9a-fA-F]{32,}\b")
MAX_DEPTH = 20


def scrub_text(text: str) -> str:
    text = _SECRET_PAIR.sub(lambda m: m.group("name") + FILTERED, text)
    return _LONG_HEX.sub(FILTERED, text)


def _scrub(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        return FILTERED  # deeper than any event we send: safer gone than looked at
    if isinstance(value, dict):
        return {k: FILTERED if isinstance(k, str) and _SENSITIVE_NAME.search(k)
                else _scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub(item, depth + 1) for item in value)
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_event(event: Any, hint: dict[str, Any] | None = None) -> Any:
    """sentry-sdk's before_send (and before_breadcrumb): the event without secrets."""
    return _scrub(event)


def init_sentry(dsn: str, *, environment: str, release: str = "", **options: Any) -> None:
    """sentry-sdk with the panel's choices; `options` add to them (a test's transport)."""
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        # Personal data (emails, addresses, cookies) stays off: sentry-sdk's default.
        before_send=scrub_event,
        before_breadcrumb=lambda crumb, hint: _scrub(crumb),
        # Errors only: performance tracing would send every API call's URL and timing.
        traces_sample_rate=0.0,
        **options,
    )
