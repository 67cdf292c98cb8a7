"""Balance checks store each provider's balance and alert once per crossing."""

from decimal import Decimal

import pytest
from django.core import mail

from providers.models import Provider
from providers.sync import check_balances

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_with_email(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-12345678")


def test_balance_and_currency_are_stored(provider, sandbox):
    sandbox.set_balance(sandbox.key, "123.45678")

    check_balances()

    provider.refresh_from_db()
    assert provider.balance == Decimal("123.45678")
    assert provider.balance_currency == "USD"
    assert provider.balance_checked_at is not None


def test_low_balance_alerts_once_and_again_only_after_recovery(
        provider, sandbox, admin_with_email):
    Provider.objects.filter(pk=provider.pk).update(low_balance_threshold=Decimal("50"))
    sandbox.set_balance(sandbox.key, "20")

    check_balances()
    check_balances()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["boss@example.com"]
    assert "Sandbox" in mail.outbox[0].subject and "20" in mail.outbox[0].body

    sandbox.set_balance(sandbox.key, "80")
    check_balances()
    provider.refresh_from_db()
    assert not provider.low_balance_alerted
    assert len(mail.outbox) == 1

    sandbox.set_balance(sandbox.key, "10")
    check_balances()
    check_balances()
    assert len(mail.outbox) == 2


def test_a_mail_server_that_does_not_answer_does_not_stop_the_check(
        provider, sandbox, admin_with_email, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    Provider.objects.filter(pk=provider.pk).update(low_balance_threshold=Decimal("50"))
    sandbox.set_balance(sandbox.key, "20")

    check_balances()  # the alert cannot be mailed: logged, and the check goes on

    provider.refresh_from_db()
    assert provider.balance == Decimal("20") and provider.low_balance_alerted
    assert any("alert not mailed" in r.getMessage() for r in caplog.records)


def test_a_failing_upstream_keeps_the_last_known_balance(provider, sandbox, settings):
    settings.PROVIDER_READ_RETRIES = 0
    check_balances()
    provider.refresh_from_db()
    known, when = provider.balance, provider.balance_checked_at
    sandbox.set_fault("http500", action="balance")

    check_balances()

    provider.refresh_from_db()
    assert (provider.balance, provider.balance_checked_at) == (known, when)


def test_disabled_providers_are_not_asked(provider, sandbox):
    Provider.objects.filter(pk=provider.pk).update(enabled=False)
    sandbox.set_balance(sandbox.key, "99")

    check_balances()

    provider.refresh_from_db()
    assert provider.balance is None
