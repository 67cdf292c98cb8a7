"""The Mass order page: one order per line, a result per line, nothing placed twice."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from orders.models import Order
from panel.models import LedgerEntry
from tests.conftest import make_customer, make_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _token(client) -> str:
    html = client.get(reverse("mass_order")).content.decode()
    [token] = re.findall(r'name="token" value="([0-9a-f-]{36})"', html)
    return token


def _rows(html: str) -> list[tuple[int, str]]:
    """(line number, what the result cell says) for every line of the result table."""
    rows = re.findall(r'<th scope="row">(\d+)</th>\s*<td><code>[^<]*</code></td>\s*<td>(.*?)</td>',
                      html, re.S)
    return [(int(number), re.sub(r"<[^>]+>", "", cell).strip()) for number, cell in rows]


def test_twenty_lines_with_two_bad_ones_place_eighteen_and_say_why_per_line(
        alice_client, alice, catalog):
    service = make_service(catalog, "Default")
    low = service.min_quantity
    lines = [f"{service.pk} | https://instagram.com/p/mass{i} | {low}" for i in range(20)]
    lines[4] = f"{service.pk}|https://instagram.com/p/few|{low - 1}"  # below the minimum
    lines[11] = f"{service.pk}|{low}|https://instagram.com/p/swapped"  # SmartPanel's order

    response = alice_client.post(reverse("mass_order"),
                                 {"orders": "\n".join(lines), "token": _token(alice_client)})

    assert response.status_code == 200
    html = response.content.decode()
    rows = _rows(html)
    assert [number for number, _ in rows] == list(range(1, 21))
    assert rows[4][1] == f"Refused Quantity less than minimal {low}"
    assert rows[11][1] == "Refused Incorrect link"
    placed = Order.objects.filter(user=alice)
    assert placed.count() == 18
    for number, cell in rows:
        if number not in (5, 12):
            order = placed.get(link=f"https://instagram.com/p/mass{number - 1}")
            assert cell == f"Placed #{order.pk}"
            assert f'href="/orders/{order.pk}/"' in html
    assert "18 orders placed, 2 lines refused." in html


def test_sending_the_same_mass_order_again_places_nothing(alice_client, alice, catalog):
    service = make_service(catalog, "Default", one_order_per_link=False)
    text = "\n".join(f"{service.pk}|https://x.com/p/{i}|{service.min_quantity}" for i in range(5))
    form = {"orders": text, "token": _token(alice_client)}

    first = alice_client.post(reverse("mass_order"), form)
    again = alice_client.post(reverse("mass_order"), form)

    assert Order.objects.filter(user=alice).count() == 5
    assert LedgerEntry.objects.filter(user=alice, kind=LedgerEntry.Kind.CHARGE).count() == 5
    assert "Nothing was placed again." in again.content.decode()
    assert _rows(again.content.decode()) == _rows(first.content.decode())


@pytest.mark.django_db(transaction=True)
def test_the_same_mass_order_sent_from_two_threads_at_once_places_it_once(catalog):
    alice = make_customer("alice")
    service = make_service(catalog, "Default", one_order_per_link=False)
    text = "\n".join(f"{service.pk}|https://x.com/p/{i}|{service.min_quantity}" for i in range(3))
    browser = Client()
    browser.force_login(alice)
    form = {"orders": text, "token": _token(browser)}
    start = threading.Barrier(2)
    pages: list[str] = []

    def send() -> None:
        client = Client()
        client.force_login(alice)
        start.wait()
        try:
            pages.append(client.post(reverse("mass_order"), form).content.decode())
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Order.objects.filter(user=alice).count() == 3
    assert sum("Nothing was placed again." in page for page in pages) == 1


def test_more_than_a_thousand_lines_are_refused_whole(alice_client, alice, catalog):
    service = make_service(catalog, "Default", one_order_per_link=False)
    text = "\n".join(f"{service.pk}|https://x.com/p/{i}|{service.min_quantity}"
                     for i in range(1001))

    response = alice_client.post(reverse("mass_order"),
                                 {"orders": text, "token": _token(alice_client)})

    assert response.status_code == 400
    html = response.content.decode()
    assert "At most 1000 lines per mass order; this one has 1001." in html
    assert 'aria-describedby="id_orders-help id_orders-error"' in html
    assert not Order.objects.exists()


def test_the_page_says_which_order_the_fields_go_in(alice_client):
    html = alice_client.get(reverse("mass_order")).content.decode()

    assert "<code>service_id|link|quantity</code>" in html
    assert "<code>service_id|quantity|link</code>" in html
    assert '<label for="id_orders">' in html


def test_the_page_needs_a_login(client):
    response = client.get(reverse("mass_order"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
