"""Accounts through the pages, with the test client: sign-up with the terms box and a
verification link, login by username or email, the lock-out and its hourly bound per account,
password reset and change, the time zone, email change, suspended customers, staff deposits."""

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.contrib.auth.models import Permission
from django.core import mail
from django.urls import reverse

from panel.models import ApiKey, LedgerEntry, User

pytestmark = pytest.mark.django_db

PASSWORD = "pw-123456789"  # the fixtures' (tests/conftest.py)
NEW_PASSWORD = "a-new-long-passphrase-42"


@pytest.fixture(autouse=True)
def fresh_limits(settings, request):
    """allauth's rate limits live in the cache: give every test its own, and axes a clean
    slate (the database handler, as in production)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"accounts-{request.node.nodeid}"}}
    settings.AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
    # Hundreds of logins: a fast hasher keeps the file quick (hashing is not under test).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    axes_reset()
    yield
    axes_reset()


def _sign_up(client, username="newcustomer", email="newcustomer@example.com", terms=True, **extra):
    data = {"username": username, "email": email, "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD, **extra}
    if terms:
        data["terms"] = "on"
    return client.post(reverse("account_signup"), data)


def _log_in(client, login, password=PASSWORD, address="127.0.0.1"):
    return client.post(reverse("account_login"), {"login": login, "password": password},
                       REMOTE_ADDR=address)


def _link_in(message) -> str:
    match = re.search(r"https?://\S+", message.body)
    assert match, message.body
    return match.group(0)


def _logged_in_as(client) -> str | None:
    user = client.get(reverse("profile")).wsgi_request.user
    return user.username if user.is_authenticated else None


# --- sign-up and verification ----------------------------------------------------------------

def test_sign_up_is_refused_without_the_terms_box(client):
    response = _sign_up(client, terms=False)

    assert response.status_code == 200
    assert "Please accept the terms of service to sign up." in response.content.decode()
    assert 'aria-invalid="true" aria-describedby="id_terms-error"' in response.content.decode()
    assert not User.objects.filter(username="newcustomer").exists()
    assert mail.outbox == []


def test_the_verification_link_verifies_the_address_and_only_then_login_works(client, settings):
    response = _sign_up(client)
    assert response.status_code == 302
    assert response["Location"] == reverse("account_email_verification_sent")
    customer = User.objects.get(username="newcustomer")
    assert not EmailAddress.objects.get(user=customer).verified
    assert [m.to for m in mail.outbox] == [["newcustomer@example.com"]]
    assert f"Hello from {settings.PANEL_NAME}!" in mail.outbox[0].body
    link = _link_in(mail.outbox[0])

    client.logout()
    refused = _log_in(client, "newcustomer", NEW_PASSWORD)
    assert refused["Location"] == reverse("account_email_verification_sent")
    assert _logged_in_as(client) is None

    page = client.get(link)
    assert page.status_code == 200
    assert "newcustomer@example.com" in page.content.decode()
    confirmed = client.post(link)
    assert confirmed.status_code == 302
    assert EmailAddress.objects.get(user=customer).verified

    assert _log_in(client, "newcustomer", NEW_PASSWORD).status_code == 302
    assert _logged_in_as(client) == "newcustomer"


def test_sign_up_can_be_turned_off(client, settings):
    settings.SIGNUP_ENABLED = False

    page = client.get(reverse("account_signup"))
    assert "Sign-up is closed" in page.content.decode()
    _sign_up(client)
    assert not User.objects.filter(username="newcustomer").exists()
    home = client.get(reverse("home")).content.decode()
    assert reverse("account_signup") not in home
    assert reverse("account_login") in home


def test_the_anonymous_home_page_offers_sign_up_and_log_in(client):
    home = client.get(reverse("home")).content.decode()

    assert f'href="{reverse("account_signup")}"' in home
    assert f'href="{reverse("account_login")}"' in home


# --- login -----------------------------------------------------------------------------------

@pytest.mark.parametrize("login", ["alice", "alice@example.com", "ALICE@example.com"])
def test_a_customer_logs_in_by_username_or_email(client, alice, login):
    response = _log_in(client, login)

    assert response.status_code == 302
    assert _logged_in_as(client) == "alice"


def test_the_old_login_address_leads_to_the_login_page(client):
    response = client.get("/login/?next=/api/")

    assert response.status_code == 302
    assert response["Location"] == reverse("account_login") + "?next=/api/"


def test_a_logged_in_page_sends_strangers_to_the_login_page(client):
    response = client.get(reverse("profile"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_log_out_ends_the_session(client, alice):
    client.force_login(alice)
    assert client.post(reverse("account_logout")).status_code == 302
    assert _logged_in_as(client) is None


def test_a_suspended_customer_is_refused_with_a_clear_message(client, alice):
    _, raw = ApiKey.issue(alice)
    User.objects.filter(pk=alice.pk).update(is_active=False)

    response = _log_in(client, "alice")

    assert response["Location"] == reverse("account_inactive")
    page = client.get(response["Location"]).content.decode()
    assert "Your account is suspended" in page
    assert _logged_in_as(client) is None
    assert ApiKey.objects.authenticate(raw) is None
    # A wrong password tells nothing about the account's state.
    wrong = _log_in(client, "alice", "not-the-password")
    assert "suspended" not in wrong.content.decode()


# --- guessing protection ---------------------------------------------------------------------

def test_the_account_locks_after_the_failure_limit_and_says_when_to_try_again(client, alice,
                                                                              settings):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = _log_in(client, "alice", "wrong-guess")
        assert response.status_code == 200
        assert "not correct" in response.content.decode()

    locked = _log_in(client, "alice", "wrong-guess")

    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Logging in to this account is paused" in page
    assert f"There were {limit} failed logins" in page
    assert f"try again in {settings.AXES_COOLOFF_MINUTES} minutes" in page
    # Even the right password does not get in while the lock holds.
    assert _log_in(client, "alice").status_code == 429
    assert _logged_in_as(client) is None


def test_an_account_gets_at_most_the_failure_limit_of_password_checks_an_hour(client, alice,
                                                                              settings):
    """The bound is per account: new addresses and other spellings of the login do not reset
    it. 150 guesses from 150 addresses in an hour: only the first AXES_FAILURE_LIMIT (10, of
    the 100 allowed) reach a password check."""
    limit, cooloff = settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_MINUTES
    assert limit * -(-60 // cooloff) <= settings.MAX_LOGIN_GUESSES_PER_HOUR <= 100
    spellings = ["alice", "ALICE", "alice@example.com", " Alice@Example.com "]
    checked = 0
    for i in range(150):
        response = _log_in(client, spellings[i % 4], f"guess-{i}", address=f"10.0.0.{i + 1}")
        if response.status_code == 200:  # the form said "wrong password": a real check
            checked += 1
        else:
            assert response.status_code == 429
    assert checked == limit - 1  # the limit-th wrong guess itself answers with the lock page

    # 59 minutes later: still locked. 61 minutes after the last counted failure: open again.
    last = AccessAttempt.objects.order_by("-attempt_time").first().attempt_time
    AccessAttempt.objects.update(attempt_time=last - timedelta(minutes=cooloff - 1))
    assert _log_in(client, "alice").status_code == 429
    AccessAttempt.objects.update(attempt_time=last - timedelta(minutes=cooloff + 1))
    assert _log_in(client, "alice").status_code == 302
    assert _logged_in_as(client) == "alice"


def test_a_successful_login_does_not_hand_an_attacker_fresh_guesses(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _log_in(client, "alice", "wrong-guess", address="10.9.9.9").status_code == 200
    assert _log_in(client, "alice").status_code == 302  # the owner, in between
    client.logout()

    assert _log_in(client, "alice", "wrong-guess", address="10.9.9.9").status_code == 429


@pytest.mark.parametrize(("limit", "cooloff"), [("101", "60"), ("10", "5"), ("0", "60")])
def test_settings_refuse_a_lock_out_that_allows_over_100_guesses_an_hour(limit, cooloff):
    env = {"AXES_FAILURE_LIMIT": limit, "AXES_COOLOFF_MINUTES": cooloff,
           "DJANGO_SETTINGS_MODULE": "panel.settings", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env,
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                            text=True, timeout=60)

    assert result.returncode != 0
    assert "at most that many password guesses an hour per account" in result.stderr


def test_a_password_reset_lifts_the_lock(client, alice, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _log_in(client, "alice", "wrong-guess")
    assert _log_in(client, "alice").status_code == 429

    client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    form_page = client.get(_link_in(mail.outbox[-1]), follow=True)
    client.post(form_page.redirect_chain[-1][0],
                {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert _log_in(client, "alice", NEW_PASSWORD).status_code == 302


# --- password reset and change ---------------------------------------------------------------

def test_password_reset_sends_a_link_that_sets_a_new_password(client, alice):
    response = client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    assert response["Location"] == reverse("account_reset_password_done")
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]
    link = _link_in(mail.outbox[0])

    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    done = client.post(form_page.redirect_chain[-1][0],
                       {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done["Location"] == reverse("account_reset_password_from_key_done")

    assert _log_in(client, "alice", PASSWORD).status_code == 200  # the old one is gone
    assert _log_in(client, "alice", NEW_PASSWORD).status_code == 302
    # The link works once.
    again = client.get(link, follow=True)
    assert "This link does not work" in again.content.decode()


def test_password_reset_mails_are_rate_limited_per_address(client, alice):
    statuses = [client.post(reverse("account_reset_password"),
                            {"email": "alice@example.com"}).status_code for _ in range(5)]

    assert statuses == [302, 302, 302, 429, 429]
    assert len(mail.outbox) == 3
    page = client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    assert "Too many requests" in page.content.decode()


def test_a_customer_changes_their_password(client, alice):
    client.force_login(alice)
    wrong = client.post(reverse("account_change_password"), {
        "oldpassword": "not-it", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert wrong.status_code == 200
    assert 'id="id_oldpassword-error"' in wrong.content.decode()

    changed = client.post(reverse("account_change_password"), {
        "oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert changed.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


# --- profile: time zone ----------------------------------------------------------------------

def test_the_profile_time_zone_changes_how_times_render(client, alice):
    key, _ = ApiKey.issue(alice, "bot")
    ApiKey.objects.filter(pk=key.pk).update(created_at=datetime(2026, 1, 15, 22, 30, tzinfo=UTC))
    client.force_login(alice)
    assert "2026-01-15 22:30" in client.get(reverse("api_docs")).content.decode()

    response = client.post(reverse("profile"), {"time_zone": "Asia/Tokyo"})

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.time_zone == "Asia/Tokyo"
    page = client.get(reverse("api_docs")).content.decode()
    assert "2026-01-16 07:30" in page  # UTC+9
    assert "2026-01-15 22:30" not in page
    assert "JST" in client.get(reverse("profile")).content.decode()


def test_the_profile_refuses_an_unknown_time_zone(client, alice):
    client.force_login(alice)

    response = client.post(reverse("profile"), {"time_zone": "Mars/Olympus_Mons"})

    assert response.status_code == 200
    assert 'id="id_time_zone-error"' in response.content.decode()
    alice.refresh_from_db()
    assert alice.time_zone == "UTC"


# --- email change ----------------------------------------------------------------------------

def test_a_new_email_address_counts_only_once_verified(client, alice):
    client.force_login(alice)

    client.post(reverse("account_email"), {"action_add": "", "email": "alice.new@example.com"})

    alice.refresh_from_db()
    assert alice.email == "alice@example.com"  # still the old one
    new = EmailAddress.objects.get(user=alice, email="alice.new@example.com")
    assert not new.verified and not new.primary
    page = client.get(reverse("account_email")).content.decode()
    assert "alice.new@example.com" in page and "Not verified yet" in page
    sent = [m for m in mail.outbox if m.to == ["alice.new@example.com"]]
    assert len(sent) == 1

    client.force_login(alice)
    client.post(_link_in(sent[0]))

    alice.refresh_from_db()
    assert alice.email == "alice.new@example.com"
    assert list(EmailAddress.objects.filter(user=alice).values_list("email", "primary",
                                                                      "verified")) == [
        ("alice.new@example.com", True, True)]


# --- staff deposit stand-in ------------------------------------------------------------------

def _staff_with(*codenames):
    staff = User.objects.create_user("desk", "desk@example.com", PASSWORD, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return staff


def test_staff_deposit_to_a_customer_through_the_admin(client, alice):
    staff = _staff_with("view_user", "change_user")
    client.force_login(staff)
    url = reverse("admin:panel_user_deposit", args=[alice.pk])
    change_page = client.get(reverse("admin:panel_user_change", args=[alice.pk]))
    assert url in change_page.content.decode()

    refused = client.post(url, {"amount": "-5", "memo": "x"})
    assert refused.status_code == 200
    response = client.post(url, {"amount": "25.5", "memo": "bank transfer 4711"}, follow=True)

    alice.refresh_from_db()
    assert alice.balance == Decimal("125.5")
    entry = LedgerEntry.objects.filter(user=alice).first()
    assert (entry.kind, entry.amount, entry.actor_id, entry.memo) == (
        "deposit", Decimal("25.5"), staff.pk, "bank transfer 4711")
    assert "Deposited 25.50 USD to alice; the balance is now 125.50 USD." in \
        response.content.decode()


def test_a_deposit_needs_the_change_permission_on_users(client, alice):
    client.force_login(_staff_with("view_user"))
    url = reverse("admin:panel_user_deposit", args=[alice.pk])

    assert client.get(url).status_code == 403
    assert client.post(url, {"amount": "25", "memo": "no"}).status_code == 403

    client.force_login(alice)  # a customer is no staff: the admin's login page
    assert client.post(url, {"amount": "25", "memo": "no"}).status_code == 302
    alice.refresh_from_db()
    assert alice.balance == Decimal("100")
