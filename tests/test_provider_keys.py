"""Provider API keys are encrypted at rest, shown only masked, and can be rotated."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from providers.keys import KeyDecryptionError
from providers.models import Provider

pytestmark = pytest.mark.django_db
SECRET = "live-key-0123456789abcdef"


def _stored_column(provider: Provider) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key_encrypted FROM providers_provider WHERE id = %s",
                       [provider.pk])
        return cursor.fetchone()[0]


def _provider(name: str = "Upstream") -> Provider:
    provider = Provider(name=name, api_url="http://127.0.0.1:9/api/v2")
    provider.api_key = SECRET
    provider.save()
    return provider


def test_the_key_is_encrypted_in_the_database_and_decrypts_back():
    provider = _provider()

    stored = _stored_column(provider)
    assert SECRET not in stored
    assert Provider.objects.get(pk=provider.pk).api_key == SECRET


def test_the_key_is_shown_only_masked():
    provider = _provider()

    assert provider.masked_key != SECRET
    assert SECRET not in provider.masked_key
    assert SECRET not in repr(provider.client())


def test_rotation_reencrypts_under_the_new_key_and_old_key_can_go(settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    provider = _provider()
    before = _stored_column(provider)
    new_key = Fernet.generate_key().decode()

    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert Provider.objects.get(pk=provider.pk).api_key == SECRET  # old tokens still read
    call_command("rotate_provider_keys")
    assert _stored_column(provider) != before

    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert Provider.objects.get(pk=provider.pk).api_key == SECRET


def test_a_key_encrypted_under_a_lost_key_fails_clearly(settings):
    provider = _provider()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(KeyDecryptionError) as excinfo:
        Provider.objects.get(pk=provider.pk).api_key  # noqa: B018
    assert SECRET not in str(excinfo.value)


def test_admin_page_never_sends_the_key_back(admin_client):
    provider = _provider()

    page = admin_client.get(f"/admin/providers/provider/{provider.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert SECRET not in html
    assert provider.masked_key in html


def test_admin_adds_a_provider_with_its_key(admin_client, sandbox):
    response = admin_client.post("/admin/providers/provider/add/", {
        "name": "Added", "api_url": sandbox.url, "currency": "USD", "rate_to_panel": "1",
        "enabled": "on", "new_api_key": "typed-in-key-123456",
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Provider.objects.get(name="Added").api_key == "typed-in-key-123456"
