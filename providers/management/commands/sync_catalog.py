from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers.models import Provider
from providers.sync import sync_catalog


class Command(BaseCommand):
    help = "Sync the catalog of the named providers now (all enabled ones with --all)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("providers", nargs="*", help="provider names or ids")
        parser.add_argument("--all", action="store_true", help="every enabled provider")

    def handle(self, *args: Any, **options: Any) -> None:
        providers = _select(options["providers"], options["all"])
        failed = 0
        for provider in providers:
            result = sync_catalog(provider)
            style = self.style.SUCCESS if result.ok else self.style.ERROR
            self.stdout.write(style(f"{provider.name}: {result.message or result.summary()}"))
            failed += not result.ok
        if failed:
            raise CommandError(f"{failed} of {len(providers)} syncs failed")


def _select(names: list[str], everything: bool) -> list[Provider]:
    if everything:
        return list(Provider.objects.filter(enabled=True))
    if not names:
        raise CommandError("name at least one provider, or use --all")
    found = []
    for name in names:
        provider = (Provider.objects.filter(pk=int(name)).first() if name.isdigit()
                    else Provider.objects.filter(name=name).first())
        if provider is None:
            raise CommandError(f"no provider {name!r}")
        found.append(provider)
    return found
