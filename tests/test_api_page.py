"""The customer's API page: their keys (created, shown once, revoked) and the API v2 reference."""

import re

import pytest
from django.urls import reverse

from orders import api, apidocs, errors
from orders.params import SERVICE_TYPE_SPECS, SERVICE_TYPES
from panel.models import ApiKey

pytestmark = pytest.mark.django_db

ACTIONS = ("services", "add", "status", "refill", "refill_status", "cancel", "balance")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def _page(client) -> str:
    response = client.get(reverse("api_docs"))
    assert response.status_code == 200
    return response.content.decode()


def _raw_keys_in(html: str) -> list[str]:
    return re.findall(r'<code id="new-api-key" class="secret">([0-9a-f]{64})</code>', html)


def test_the_page_needs_a_login(client):
    response = client.get(reverse("api_docs"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_the_page_lists_only_the_customers_own_active_keys(alice_client, alice, bob):
    ApiKey.issue(alice, "alice script")
    revoked, _ = ApiKey.issue(alice, "old alice script")
    revoked.revoke()
    bobs, _ = ApiKey.issue(bob, "bob script")

    html = _page(alice_client)

    assert "alice script" in html
    assert "old alice script" not in html
    assert "bob script" not in html
    assert f"{bobs.prefix}…" not in html
    assert reverse("api_key_revoke", args=[bobs.pk]) not in html


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(alice_client, alice):
    response = alice_client.post(reverse("api_key_create"), {"name": "my bot"}, follow=True)

    html = response.content.decode()
    [raw] = _raw_keys_in(html)
    key = ApiKey.objects.authenticate(raw)
    assert key is not None and key.user == alice and key.name == "my bot"
    stored = ApiKey.objects.filter(pk=key.pk).values_list("prefix", "hashed").get()
    assert raw not in "".join(stored)
    assert "no-store" in response["Cache-Control"]

    again = _page(alice_client)
    assert raw not in again
    assert _raw_keys_in(again) == []
    assert f"{raw[:8]}…" in again  # still listed, by its prefix


def test_a_nameless_key_can_be_created(alice_client, alice):
    alice_client.post(reverse("api_key_create"), {"name": ""})

    assert ApiKey.objects.active().filter(user=alice, name="").count() == 1


def test_a_name_over_100_characters_is_refused(alice_client, alice):
    response = alice_client.post(reverse("api_key_create"), {"name": "x" * 101}, follow=True)

    assert "at most 100 characters" in response.content.decode()
    assert not ApiKey.objects.filter(user=alice).exists()


def test_the_eleventh_active_key_is_refused(alice_client, alice):
    for i in range(10):
        ApiKey.issue(alice, f"key {i}")

    response = alice_client.post(reverse("api_key_create"), {"name": "one too many"},
                                 follow=True)

    html = response.content.decode()
    assert "You already have 10 active keys" in html
    assert _raw_keys_in(html) == []
    assert ApiKey.objects.active().filter(user=alice).count() == 10


def test_a_revoked_key_frees_a_place_under_the_limit(alice_client, alice):
    keys = [ApiKey.issue(alice)[0] for _ in range(10)]
    alice_client.post(reverse("api_key_revoke", args=[keys[0].pk]))

    alice_client.post(reverse("api_key_create"), {"name": "replacement"})

    assert ApiKey.objects.active().filter(user=alice).count() == 10
    assert ApiKey.objects.active().filter(user=alice, name="replacement").exists()


def test_revoking_a_key_stops_it_working(alice_client, alice):
    key, raw = ApiKey.issue(alice, "to revoke")

    response = alice_client.post(reverse("api_key_revoke", args=[key.pk]), follow=True)

    assert response.status_code == 200
    assert "revoked" in response.content.decode()
    assert ApiKey.objects.authenticate(raw) is None
    assert "to revoke" not in _page(alice_client).split('id="keys"')[1].split("</section>")[0]


def test_another_customers_key_cannot_be_revoked(alice_client, bob):
    bobs, raw = ApiKey.issue(bob, "bob script")

    response = alice_client.post(reverse("api_key_revoke", args=[bobs.pk]))

    assert response.status_code == 404
    assert ApiKey.objects.authenticate(raw) == bobs


def test_an_unknown_key_id_is_a_404(alice_client):
    assert alice_client.post(reverse("api_key_revoke", args=[999999])).status_code == 404


@pytest.mark.parametrize(("name", "args"), [("api_key_create", []), ("api_key_revoke", [1])])
def test_the_key_actions_refuse_get(alice_client, name, args):
    assert alice_client.get(reverse(name, args=args)).status_code == 405


def test_the_key_actions_need_the_csrf_token(alice, bob):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    key, _ = ApiKey.issue(alice)

    assert client.post(reverse("api_key_create"), {"name": "x"}).status_code == 403
    assert client.post(reverse("api_key_revoke", args=[key.pk])).status_code == 403
    assert ApiKey.objects.active().filter(user=alice).count() == 1


def test_the_page_documents_every_action_and_every_service_type(alice_client):
    html = _page(alice_client)

    for action in ACTIONS:
        assert f"<code>{action}</code>" in html
    for service_type in SERVICE_TYPES:
        assert f'<th scope="row">{service_type}</th>' in html
    for parameter in ("orders", "refills", "runs", "interval", "posts", "old_posts", "expiry",
                      "answer_number", "groups", "hashtags", "usernames", "media"):
        assert f"<code>{parameter}</code>" in html


def test_the_documented_actions_and_errors_are_the_ones_the_api_serves():
    assert {a.action for a in apidocs.action_docs("USD")} == set(api.ACTIONS)
    for message in (errors.INVALID_KEY, errors.BAD_REQUEST, errors.INCORRECT_ORDER,
                    errors.REFILL_NOT_FOUND, errors.TOO_MANY):
        assert message in apidocs.API_ERRORS


def test_each_types_row_lists_exactly_the_fields_that_validate_its_orders(alice_client):
    html = _page(alice_client)

    for spec in SERVICE_TYPE_SPECS:
        row = html.split(f'<th scope="row">{spec.name}</th>')[1].split("</tr>")[0]
        documented = re.findall(r"<li><code>([a-z_]+)</code>", row)
        assert documented == [f.name for f in spec.fields], spec.name
        for f in spec.fields:
            assert (f"<code>{f.name}</code> <span class=\"hint\">(optional)</span>" in row) \
                == (not f.required), (spec.name, f.name)


def test_the_page_shows_the_endpoint_examples_and_limits(alice_client, settings):
    settings.API_RATE_LIMIT_PER_KEY = 321
    settings.API_RATE_LIMIT_PER_IP = 654
    settings.PANEL_CURRENCY = "EUR"

    html = _page(alice_client)

    assert "<code class=\"endpoint\">http://testserver/api/v2</code>" in html
    assert "curl -X POST http://testserver/api/v2" in html
    assert 'API_URL = "http://testserver/api/v2"' in html
    assert "YOUR_API_KEY" in html
    assert "321 calls per minute per API key" in html
    assert "654 per minute per IP address" in html
    assert "in EUR" in html
    assert "&quot;balance&quot;: &quot;100.84292&quot;" in html
    assert "Invalid API key" in html
    assert "You have active order with this link. Please wait until order being completed." \
        in html


def test_the_page_says_how_many_posts_a_subscription_without_posts_covers(
        alice_client, settings):
    settings.SUBSCRIPTION_DEFAULT_POSTS = 17

    html = _page(alice_client)

    assert "Subscriptions need <code>posts</code>" not in html
    assert "Without <code>posts</code>, a subscription covers 17 new posts" in html


def test_the_page_shows_no_real_key_but_the_new_one(alice_client, alice):
    _, raw = ApiKey.issue(alice, "existing")

    html = _page(alice_client)

    assert raw not in html
    assert raw[8:] not in html


def test_the_nav_links_to_the_page_for_customers_only(client, alice):
    assert reverse("api_docs") + '"' not in client.get(reverse("home")).content.decode()

    client.force_login(alice)

    assert f'href="{reverse("api_docs")}"' in client.get(reverse("home")).content.decode()


def test_the_page_runs_no_inline_script(alice_client):
    alice_client.post(reverse("api_key_create"), {"name": "x"})

    html = _page(alice_client)

    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert not re.search(r"\son[a-z]+=", html)


def test_the_page_costs_the_same_few_queries_with_many_keys(alice_client, alice,
                                                            django_assert_max_num_queries):
    for i in range(10):
        ApiKey.issue(alice, f"key {i}")

    with django_assert_max_num_queries(4):  # session, user, keys (+ a session save)
        _page(alice_client)
