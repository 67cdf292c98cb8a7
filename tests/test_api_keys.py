"""Customers' API keys: shown once, stored hashed, found by prefix, revocable."""

import pytest

from panel.models import ApiKey

pytestmark = pytest.mark.django_db


def test_a_key_is_shown_once_and_stored_only_as_a_hash(alice):
    key, raw = ApiKey.issue(alice, "my script")

    stored = ApiKey.objects.values("prefix", "hashed").get(pk=key.pk)
    assert raw not in str(stored)
    assert stored["prefix"] == raw[:8]
    assert ApiKey.objects.authenticate(raw) == key


def test_a_customer_may_hold_several_keys(alice):
    _, first = ApiKey.issue(alice)
    _, second = ApiKey.issue(alice)

    assert ApiKey.objects.authenticate(first).user == alice
    assert ApiKey.objects.authenticate(second).user == alice


@pytest.mark.parametrize("raw", ["", "short", None, 12345, "x" * 64, "é" * 70])
def test_wrong_or_malformed_keys_find_nothing(alice, raw):
    ApiKey.issue(alice)

    assert ApiKey.objects.authenticate(raw) is None


def test_a_key_with_the_right_prefix_but_wrong_rest_finds_nothing(alice):
    _, raw = ApiKey.issue(alice)

    assert ApiKey.objects.authenticate(raw[:8] + "0" * 56) is None


def test_a_revoked_key_or_a_suspended_customer_is_refused(alice, bob):
    key, raw = ApiKey.issue(alice)
    _, bobs = ApiKey.issue(bob)

    key.revoke()
    bob.is_active = False
    bob.save()

    assert ApiKey.objects.authenticate(raw) is None
    assert ApiKey.objects.authenticate(bobs) is None


def test_an_authenticated_key_reads_its_owner_in_full(alice):
    key, raw = ApiKey.issue(alice, "reseller")
    found = ApiKey.objects.authenticate(raw)

    assert found == key and found.name == "reseller" and found.last_used_at is None
    assert found.user == alice and found.user.discount_percent == alice.discount_percent
    assert (found.user.username, found.user.balance) == (alice.username, alice.balance)
    key.revoke()
    assert ApiKey.objects.authenticate(raw) is None
