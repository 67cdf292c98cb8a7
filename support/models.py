"""Support tickets: a customer's question with its thread of messages.

A ticket is open while it waits for staff, answered once staff replied, closed when either
side closes it. Staff may add internal notes to the thread; the customer's pages never load
them (TicketMessage.objects.public()). `unread_by_staff` is set by every customer message
and cleared when a staff member opens the ticket: the inbox's "unread" filter.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# Order tickets list the orders they are about; panels allow a handful per ticket.
MAX_ORDER_IDS = 10


class TicketQuerySet(models.QuerySet["Ticket"]):
    def for_customer(self, user_id: int) -> TicketQuerySet:
        return self.filter(user_id=user_id)

    def mentioning(self, order_id: int) -> TicketQuerySet:
        """The tickets that list this order (for an order's page on the desk)."""
        return self.filter(order_ids__contains=[order_id])


class Ticket(models.Model):
    class Subject(models.TextChoices):
        ORDER = "order", _("Order")
        PAYMENT = "payment", _("Payment")
        SERVICE = "service", _("Service")
        OTHER = "other", _("Other")

    class Request(models.TextChoices):
        REFILL = "refill", _("Refill")
        CANCEL = "cancel", _("Cancel")
        SPEED_UP = "speed_up", _("Speed up")
        OTHER = "other", _("Other")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        ANSWERED = "answered", _("Answered")
        CLOSED = "closed", _("Closed")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="tickets")
    subject = models.CharField(max_length=20, choices=Subject.choices)
    # Order tickets: what the customer asks for, and which of their orders.
    request = models.CharField(max_length=20, choices=Request.choices, blank=True)
    order_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    # Payment tickets: how they paid and the payment's reference.
    payment_method = models.CharField(max_length=100, blank=True)
    transaction_id = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    unread_by_staff = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_message_at = models.DateTimeField(default=timezone.now, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = TicketQuerySet.as_manager()

    class Meta:
        ordering = ["-last_message_at", "-id"]
        indexes = [models.Index(fields=["state", "-last_message_at"], name="ticket_inbox_idx"),
                   models.Index(fields=["user", "-last_message_at"], name="ticket_customer_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(subject="order") | models.Q(request="", order_ids=[]),
                name="ticket_order_fields_only_on_order_tickets"),
        ]

    def __str__(self) -> str:
        return f"ticket #{self.pk} ({self.subject})"

    @property
    def title(self) -> str:
        """What the lists show: "Order: Refill", "Payment", …"""
        if self.subject == self.Subject.ORDER and self.request:
            return f"{self.get_subject_display()}: {self.get_request_display()}"
        return str(self.get_subject_display())

    @property
    def is_closed(self) -> bool:
        return self.state == self.State.CLOSED

    @classmethod
    def open(cls, user_id: int, body: str, **fields: object) -> Ticket:
        """A new ticket with the customer's first message, in one transaction."""
        with transaction.atomic():
            ticket = cls.objects.create(user_id=user_id, **fields)
            TicketMessage.objects.create(ticket=ticket, author_id=user_id, body=body)
        return ticket

    def customer_reply(self, body: str) -> TicketMessage | None:
        """The customer writes again: the ticket waits for staff. None once it is closed
        (a closed ticket takes no more messages: the customer opens a new one)."""
        now = timezone.now()
        with transaction.atomic():
            if not Ticket.objects.filter(pk=self.pk).exclude(state=self.State.CLOSED).update(
                    state=self.State.OPEN, unread_by_staff=True, last_message_at=now):
                return None
            self.state, self.unread_by_staff, self.last_message_at = self.State.OPEN, True, now
            return TicketMessage.objects.create(ticket=self, author_id=self.user_id, body=body,
                                                created_at=now)

    def staff_reply(self, actor_id: int, body: str) -> TicketMessage:
        """A staff answer the customer reads (and is mailed about, by the caller)."""
        now = timezone.now()
        Ticket.objects.filter(pk=self.pk).update(state=self.State.ANSWERED, closed_at=None,
                                                 last_message_at=now)
        self.state, self.closed_at, self.last_message_at = self.State.ANSWERED, None, now
        return TicketMessage.objects.create(ticket=self, author_id=actor_id, body=body,
                                            by_staff=True, created_at=now)

    def add_note(self, actor_id: int, body: str) -> TicketMessage:
        """An internal note: staff only; the ticket's state and the customer see nothing."""
        return TicketMessage.objects.create(ticket=self, author_id=actor_id, body=body,
                                            by_staff=True, internal=True)

    def close(self) -> bool:
        """Closed by either side; False when it already was."""
        now = timezone.now()
        closed = Ticket.objects.filter(pk=self.pk).exclude(state=self.State.CLOSED).update(
            state=self.State.CLOSED, closed_at=now)
        if closed:
            self.state, self.closed_at = self.State.CLOSED, now
        return bool(closed)

    def reopen(self) -> bool:
        opened = Ticket.objects.filter(pk=self.pk, state=self.State.CLOSED).update(
            state=self.State.OPEN, closed_at=None)
        if opened:
            self.state, self.closed_at = self.State.OPEN, None
        return bool(opened)


class TicketMessageQuerySet(models.QuerySet["TicketMessage"]):
    def public(self) -> TicketMessageQuerySet:
        """What the customer may read: every message but staff's internal notes."""
        return self.filter(internal=False)


class TicketMessage(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="+")
    body = models.TextField()
    # Written by staff (the customer sees "Support", never a staff member's username).
    by_staff = models.BooleanField(default=False)
    internal = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TicketMessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(internal=True) | models.Q(by_staff=True),
                                   name="ticket_note_is_by_staff"),
        ]

    def __str__(self) -> str:
        return f"message #{self.pk} on ticket #{self.ticket_id}"
