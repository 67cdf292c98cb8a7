"""The mail a customer gets when staff answer their ticket."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from support.models import Ticket, TicketMessage

log = logging.getLogger(__name__)


def mail_staff_reply(ticket: Ticket, message: TicketMessage, url: str) -> None:
    """Tell the customer support answered; call it on commit. A mail server that is down
    must not undo the answer: the reply is on the ticket page either way."""
    email = ticket.user.email
    if not email:
        return
    subject = _("[%(panel)s] Ticket #%(id)s answered") % {"panel": settings.PANEL_NAME,
                                                         "id": ticket.pk}
    body = render_to_string("support/email/staff_reply.txt",
                            {"ticket": ticket, "message": message, "url": url})
    try:
        send_mail(subject, body, None, [email])
    except Exception:  # SMTP errors have no common base class worth naming
        log.exception("mail about ticket #%s to its customer not sent", ticket.pk)
