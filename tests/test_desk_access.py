"""Who reaches the staff desk at /staff/: staff and admins, with a second factor where it is
required; customers and visitors get the 404 of a page that does not exist; each area asks
for its permission."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.urls import URLPattern, reverse

from desk import urls as desk_urls
from desk.models import AuditEntry, audit
from tests.conftest import make_customer, make_staff, totp_code


def desk_paths() -> list[str]:
    """Every page of the desk, with 1 for any id in its address."""
    paths = []
    for pattern in desk_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {name: 1 for name in pattern.pattern.converters}
        paths.append(reverse(f"desk:{pattern.name}", kwargs=kwargs))
    return paths


@pytest.mark.django_db
def test_a_customer_gets_404_on_every_staff_url(client):
    client.force_login(make_customer("carol"))
    for path in [*desk_paths(), "/staff/no-such-page/"]:
        assert client.get(path).status_code == 404, path
        assert client.post(path, {"reason": "x"}).status_code == 404, path


@pytest.mark.django_db
def test_a_visitor_gets_404_on_every_staff_url(client):
    for path in desk_paths():
        assert client.get(path).status_code == 404, path


@pytest.mark.django_db
def test_is_staff_alone_is_not_the_staff_group(client):
    """The admin site's flag does not open the desk: the Staff group (or superuser) does."""
    client.force_login(make_customer("flagonly", is_staff=True))
    assert client.get(reverse("desk:attention")).status_code == 404


@pytest.mark.django_db
def test_staff_and_admins_reach_the_desk(client):
    client.force_login(make_staff("sam"))
    page = client.get(reverse("desk:attention"))
    assert page.status_code == 200
    assert b"Staff desk" in page.content
    admin = make_customer("root", is_superuser=True, is_staff=True)
    client.force_login(admin)
    for path in desk_paths():
        # 404: there is no order #1; 405: an action's address answers POST only.
        assert client.get(path).status_code in (200, 404, 405), path


@pytest.mark.django_db
def test_a_member_without_an_area_gets_403_there(client):
    """A support person with tickets only: the order areas answer 403, tickets open."""
    support = make_customer("support", is_staff=True)
    group = Group.objects.create(name="Support")
    support.groups.add(group, Group.objects.get_or_create(name="Staff")[0])
    assert not support.has_perm("desk.orders")  # the Staff group made here has no areas
    group.permissions.add(Permission.objects.get(content_type__app_label="desk",
                                                 codename="tickets"))
    client.force_login(support)
    assert client.get(reverse("desk:tickets")).status_code == 200
    for name in ("attention", "orders", "refills", "cancels"):
        assert client.get(reverse(f"desk:{name}")).status_code == 403, name


@pytest.mark.django_db
def test_the_staff_group_has_no_balances_or_payments(client):
    sam = make_staff("sam")
    assert sam.has_perm("desk.orders") and sam.has_perm("desk.refills_cancels")
    assert sam.has_perm("desk.tickets")
    assert not sam.has_perm("desk.balances") and not sam.has_perm("desk.payments")
    assert make_staff("kim", "balances").has_perm("desk.balances")


# --- the second factor --------------------------------------------------------------------

@pytest.mark.django_db
def test_staff_without_an_authenticator_are_sent_to_set_one_up(client, settings):
    settings.STAFF_REQUIRE_MFA = True
    client.force_login(make_staff("sam"))
    page = client.get(reverse("desk:orders"))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("mfa_activate_totp"))


@pytest.mark.django_db
def test_setting_up_totp_then_a_code_opens_the_desk(client, settings):
    settings.STAFF_REQUIRE_MFA = True
    make_staff("sam")
    client.post(reverse("account_login"), {"login": "sam", "password": "pw-123456789"})
    # Adding a factor asks for the password again (allauth's reauthentication).
    setup = client.get(client.get(reverse("desk:orders"))["Location"])
    assert setup.status_code == 302 and setup["Location"].startswith(
        reverse("account_reauthenticate"))
    client.post(setup["Location"], {"password": "pw-123456789"})
    setup = client.get(reverse("mfa_activate_totp"))
    assert setup.status_code == 200
    secret = setup.context["form"].secret
    done = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert done.status_code == 302
    # Setting up is not yet entering a code in this session: the desk asks for one.
    ask = client.get(reverse("desk:orders"))
    assert ask["Location"].startswith(reverse("mfa_reauthenticate"))
    entered = client.post(ask["Location"], {"code": totp_code(secret)})
    assert entered.status_code == 302 and entered["Location"] == reverse("desk:orders")
    assert client.get(reverse("desk:orders")).status_code == 200


@pytest.mark.django_db
def test_a_wrong_code_keeps_the_desk_closed(client, settings):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    settings.STAFF_REQUIRE_MFA = True
    sam = make_staff("sam")
    secret = generate_totp_secret()
    TOTP.activate(sam, secret)
    client.force_login(sam)
    ask = client.get(reverse("desk:attention"))
    assert ask["Location"].startswith(reverse("mfa_reauthenticate"))
    wrong = f"{(int(totp_code(secret)) + 1) % 1_000_000:06d}"
    assert client.post(ask["Location"], {"code": wrong}).status_code == 200  # form again
    assert client.get(reverse("desk:attention")).status_code == 302


@pytest.mark.django_db
def test_logging_in_with_the_code_opens_the_desk(client, settings):
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    settings.STAFF_REQUIRE_MFA = True
    sam = make_staff("sam")
    secret = generate_totp_secret()
    TOTP.activate(sam, secret)
    login = client.post(reverse("account_login"),
                        {"login": "sam", "password": "pw-123456789"})
    assert login["Location"] == reverse("mfa_authenticate")
    code = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert code.status_code == 302
    assert client.get(reverse("desk:attention")).status_code == 200


# --- the audit row ------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_audit_refuses_to_run_outside_the_changes_transaction():
    sam = make_staff("sam")
    with pytest.raises(RuntimeError):
        audit(sam, "note", "outside")
    with transaction.atomic():
        entry = audit(sam, "note", "inside", customer=sam, amount="1.00")
    assert AuditEntry.objects.get() == entry
    assert entry.details == {"amount": "1.00"}
