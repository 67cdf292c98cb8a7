"""The navigation's links, rendered once per process rather than on every request."""

from django import template
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import get_urlconf
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

register = template.Library()

# Every page draws the same dozen links: a URL reversal and a translation each, about a
# millisecond a page. They depend only on the page, the language, whether someone is logged
# in and the site's settings, so each combination is rendered once. The keys are bounded:
# URL names times languages times two.
_rendered: dict[tuple[object, ...], SafeString] = {}


@register.simple_tag(takes_context=True)
def nav_links(context: template.Context) -> SafeString:
    request = context["request"]
    match = getattr(request, "resolver_match", None)
    here = match.url_name if match is not None else None
    authenticated = bool(context["user"].is_authenticated)
    key = (get_language(), get_urlconf() or settings.ROOT_URLCONF, here, authenticated,
           settings.SIGNUP_ENABLED)
    html = _rendered.get(key)
    if html is None:
        html = mark_safe(render_to_string(  # noqa: S308 (our own template, escaped)
            "includes/nav_links.html", {"here": here, "authenticated": authenticated,
                                        "signup_enabled": settings.SIGNUP_ENABLED}))
        _rendered[key] = html
    return html
