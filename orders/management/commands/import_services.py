from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders.importing import import_services
from providers.models import Provider


class Command(BaseCommand):
    help = ("Create a service to sell for every offered upstream service of a provider that "
            "no service routes to yet (sync its catalog first).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider", help="provider name")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = Provider.objects.filter(name=options["provider"]).first()
        if provider is None:
            raise CommandError(f"no provider {options['provider']!r}")
        services = import_services(provider)
        self.stdout.write(self.style.SUCCESS(f"{len(services)} services imported"))
