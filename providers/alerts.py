"""Telling the admins that a provider needs them: a warning in the log and an email to every
active superuser with an address. Low balances and currency mismatches both go through it."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.mail import send_mail

log = logging.getLogger(__name__)


def alert_admins(subject: str, message: str) -> None:
    log.warning("%s: %s", subject, message)
    recipients = list(get_user_model().objects.filter(is_superuser=True, is_active=True)
                      .exclude(email="").values_list("email", flat=True))
    if recipients:
        # Alerts are sent from sweeps and from the middle of an order's send: a mail server
        # that does not answer must not stop those (the log line above is kept either way).
        try:
            send_mail(subject, message, None, recipients)
        except Exception:
            log.exception("alert not mailed: %s", subject)
