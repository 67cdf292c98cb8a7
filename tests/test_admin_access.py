"""Who reaches the admin desk at /staff/admin/: superusers and the Admins group; staff
without the admin area get 403 on every page, customers and visitors 404."""

import pytest
from django.contrib.auth.models import Group
from django.urls import URLPattern, reverse

from desk import admin_urls
from panel.roles import ADMINS_GROUP, ensure_groups
from tests.conftest import make_customer, make_staff


def admin_paths() -> list[str]:
    """Every page of the admin desk, with 1 for any id in its address."""
    paths = []
    for pattern in admin_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {name: 1 for name in pattern.pattern.converters}
        paths.append(reverse(f"desk:{pattern.name}", kwargs=kwargs))
    return paths


def make_admin(username: str = "ada") -> object:
    """An admin who is not a superuser: a member of the Admins group."""
    ensure_groups()
    user = make_customer(username, balance="0", is_staff=True)
    user.groups.add(Group.objects.get(name=ADMINS_GROUP))
    return user


def test_every_admin_page_is_under_staff_admin():
    assert all(path.startswith("/staff/admin/") for path in admin_paths())
    assert all(pattern.name.startswith("admin_") for pattern in admin_urls.urlpatterns)


@pytest.mark.django_db
def test_staff_without_the_admin_area_get_403_on_every_admin_page(client):
    client.force_login(make_staff("sam", "balances", "payments"))
    for path in admin_paths():
        assert client.get(path).status_code == 403, path
        assert client.post(path, {"name": "x"}).status_code == 403, path


@pytest.mark.django_db
def test_customers_and_visitors_get_404_on_every_admin_page(client):
    for path in admin_paths():
        assert client.get(path).status_code == 404, path
    client.force_login(make_customer("carol"))
    for path in admin_paths():
        assert client.get(path).status_code == 404, path
        assert client.post(path, {"name": "x"}).status_code == 404, path


@pytest.mark.django_db
def test_superusers_and_the_admins_group_reach_every_admin_page(client):
    root = make_customer("root", balance="0", is_superuser=True, is_staff=True)
    for user in (root, make_admin()):
        client.force_login(user)
        for path in admin_paths():
            # 404: no provider #1; 405: an action that only takes POST.
            assert client.get(path).status_code in (200, 404, 405), path
        assert client.get(reverse("desk:admin_providers")).status_code == 200


@pytest.mark.django_db
def test_the_admin_section_shows_in_the_desk_nav_to_admins_only(client):
    admin_link = f'href="{reverse("desk:admin_dashboard")}"'
    client.force_login(make_staff("sam"))
    assert admin_link not in client.get(reverse("desk:attention")).content.decode()
    client.force_login(make_admin())
    page = client.get(reverse("desk:attention")).content.decode()
    assert admin_link in page
    # An admin in the Admins group is a desk member without being in the Staff group.
    assert client.get(reverse("desk:orders")).status_code == 200
