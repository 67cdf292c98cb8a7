from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from providers import keys
from providers.models import Provider


class Command(BaseCommand):
    help = ("Re-encrypt every provider API key under the first key of FIELD_ENCRYPTION_KEY, "
            "so that older keys can then be removed from the setting.")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            providers = list(Provider.objects.select_for_update())
            for provider in providers:
                provider.api_key_encrypted = keys.reencrypt(provider.api_key_encrypted)
            Provider.objects.bulk_update(providers, ["api_key_encrypted"])
        self.stdout.write(self.style.SUCCESS(f"re-encrypted {len(providers)} provider keys"))
