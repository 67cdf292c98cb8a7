"""The staff desk's audit trail: every staff action, who did it, when, and why.

The rows are written by `audit()` inside the transaction of the change they record, so an
action that rolls back leaves no row and a row never describes a change that did not happen."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from orders.models import Order, OrderEvent
from panel.models import User


class AuditEntry(models.Model):
    """One staff action. The desk's permissions live on this model (Meta.permissions): an
    admin grants areas of the desk by ticking them on a user or a group."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="+")
    action = models.CharField(max_length=60)
    reason = models.TextField(blank=True)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="audit_entries")
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                 null=True, blank=True, related_name="audit_entries")
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        permissions = [
            ("orders", "Desk: orders and the attention queue"),
            ("refills_cancels", "Desk: refills and cancels"),
            ("balances", "Desk: customers' balances"),
            ("tickets", "Desk: support tickets"),
            ("payments", "Desk: payments"),
            ("admin_desk", "Admin desk: providers, catalog, prices and reports"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_id} {self.action} {self.created_at:%Y-%m-%d %H:%M}"


# The desk's areas, as `desk_view(permission)` names them.
AREAS = ("orders", "refills_cancels", "balances", "tickets", "payments", "admin_desk")
# The admin desk (/staff/admin/): superusers, and whoever is granted this area (the Admins
# group of panel.roles has it).
ADMIN_AREA = "admin_desk"


def audit(actor: User, action: str, reason: str = "", order: Order | None = None,
          customer: User | None = None, **details: Any) -> AuditEntry:
    """Record a staff action. Call it inside the transaction that makes the change (it
    insists), so the row and the change commit or roll back together. An action on an order
    also shows in the order's history, with its reason."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit() belongs inside the transaction of the change it records")
    if customer is None and order is not None:
        customer = User(pk=order.user_id)
    entry = AuditEntry.objects.create(actor=actor, action=action, reason=reason, order=order,
                                      customer=customer, details=details)
    if order is not None:
        message = f"{action}: {reason}" if reason else action
        OrderEvent.objects.create(order=order, kind="staff", message=message, actor=actor)
    return entry
