"""A provider's URL is checked for outbound safety when it is saved, and again per call."""

import socket

import pytest
from django.core.exceptions import ValidationError

from providers.client import ErrorKind, ProviderError
from providers.models import Provider

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8765/api/v2",
    "http://169.254.169.254/latest/meta-data",
    "http://10.0.0.1/api/v2",
    "ftp://panel.example.com/api/v2",
])
def test_saving_a_private_or_odd_url_is_refused_in_production(settings, url):
    settings.PROVIDER_ALLOW_PRIVATE_ADDRESSES = False
    provider = Provider(name="Bad", api_url=url)
    provider.api_key = "k"

    with pytest.raises(ValidationError):
        provider.save()
    assert not Provider.objects.exists()


def test_admin_form_shows_the_refusal(settings, admin_client):
    settings.PROVIDER_ALLOW_PRIVATE_ADDRESSES = False

    response = admin_client.post("/admin/providers/provider/add/", {
        "name": "Bad", "api_url": "http://127.0.0.1:8765/api/v2", "currency": "USD",
        "rate_to_panel": "1", "enabled": "on", "new_api_key": "k-123",
    })

    assert response.status_code == 200
    assert not Provider.objects.exists()
    assert "errorlist" in response.content.decode()


def test_a_name_that_later_resolves_to_loopback_is_refused_at_call_time(
        settings, sandbox, monkeypatch):
    settings.PROVIDER_ALLOW_PRIVATE_ADDRESSES = False
    answers = {"upstream.example": "93.184.215.14"}  # a public answer when saved
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port or 80))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    provider = Provider(name="Rebinding", api_url=f"http://upstream.example:{sandbox.port}/api/v2")
    provider.api_key = sandbox.key
    provider.save()

    answers["upstream.example"] = "127.0.0.1"  # the DNS answer changes after the check
    with pytest.raises(ProviderError) as excinfo:
        provider.client().balance()

    assert excinfo.value.kind == ErrorKind.UNSAFE_URL
    assert excinfo.value.definite is True
    assert sandbox.adds() == []
