"""What today goes only to the log or an admin's email, listed on the desk too: low provider
balances, paused buying and failed catalog syncs (providers/alerts.py sends those), a growing
attention queue, and new tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from desk.access import desk_view
from orders.models import Order, Refill
from panel.templatetags.panel_money import money_text
from providers.models import Provider


@dataclass
class Alert:
    level: str  # "error" or "warning", as the message styles
    title: str
    text: str
    link: str = ""


def provider_alerts() -> list[Alert]:
    alerts = []
    low = Q(low_balance_alerted=True) | Q(balance__lt=F("low_balance_threshold"))
    for p in Provider.objects.filter(enabled=True).filter(
            low | Q(buying_paused_at__isnull=False) | Q(last_sync_ok=False)):
        if p.buying_paused_at:
            alerts.append(Alert("error", _("Buying paused at %(p)s") % {"p": p.name},
                                p.currency_mismatch))
        below = (p.balance is not None and p.low_balance_threshold is not None
                 and p.balance < p.low_balance_threshold)
        if p.low_balance_alerted or below:
            alerts.append(Alert("error", _("Low balance at %(p)s") % {"p": p.name},
                                _low_balance_text(p)))
        if p.last_sync_ok is False:
            alerts.append(Alert("warning", _("Catalog sync failed at %(p)s") % {"p": p.name},
                                p.last_sync_message))
    return alerts


def _low_balance_text(p: Provider) -> str:
    currency = p.balance_currency or p.currency
    text = _("Balance %(balance)s %(currency)s, below the threshold of %(threshold)s.") % {
        "balance": money_text(p.balance) if p.balance is not None else "?",
        "currency": currency,
        "threshold": money_text(p.low_balance_threshold) if p.low_balance_threshold else "—"}
    if p.balance_checked_at:
        checked = timezone.localtime(p.balance_checked_at).strftime("%Y-%m-%d %H:%M")
        text += " " + _("Checked %(at)s.") % {"at": checked}
    return text


def queue_alert() -> Alert | None:
    """The attention queue is long, or grew in the last hour."""
    now = timezone.now()
    waiting = Order.objects.needing_attention()
    recent = Q(flagged_at__gte=now - timedelta(hours=1))
    counts = waiting.aggregate(total=Count("pk"), last_hour=Count("pk", filter=recent))
    total = counts["total"] + Refill.objects.needing_attention().count()
    if total < settings.DESK_ATTENTION_ALERT and not counts["last_hour"]:
        return None
    level = "error" if total >= settings.DESK_ATTENTION_ALERT else "warning"
    recent_text = ngettext("%(n)s order came to need attention in the last hour.",
                           "%(n)s orders came to need attention in the last hour.",
                           counts["last_hour"]) % {"n": counts["last_hour"]}
    return Alert(level, _("%(n)s waiting for staff") % {"n": total}, recent_text,
                 reverse("desk:attention"))


def ticket_alert() -> Alert | None:
    """New tickets: the hook the tickets desk fills in (a count of open tickets)."""
    return None


@desk_view(None)
def alert_list(request: HttpRequest) -> HttpResponse:
    alerts = provider_alerts()
    for extra in (queue_alert(), ticket_alert()):
        if extra is not None:
            alerts.append(extra)
    return render(request, "desk/alerts.html", {"alerts": alerts})
