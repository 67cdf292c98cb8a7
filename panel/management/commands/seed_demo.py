from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from orders.importing import import_services
from panel import ledger
from panel.models import ApiKey, User
from panel.roles import ensure_groups
from providers.models import Provider
from providers.sandbox import DEFAULT_KEY, SandboxServer
from providers.sync import sync_catalog

DEMO_USERS = [
    # username, password, role
    ("admin", "admin-demo-pass", "admin"),
    ("staff", "staff-demo-pass", "staff"),
    ("customer", "customer-demo-pass", "customer"),
]
DEMO_DEPOSIT = Decimal("100")
SANDBOX_DB = settings.BASE_DIR / "var" / "sandbox.sqlite3"


class Command(BaseCommand):
    help = "Load the demo data the first time (idempotent) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            created = self._users()
        self._sandbox_provider()
        self.stdout.write("Demo logins (http://127.0.0.1:8000/accounts/login/):")
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {role:<9} {username} / {password}")
        if not created:
            self.stdout.write("(demo data was already loaded)")

    def _users(self) -> bool:
        staff_group, customer_group = ensure_groups()
        created_any = False
        for username, password, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if not created:
                continue
            created_any = True
            user.set_password(password)
            user.email = f"{username}@example.com"
            user.is_staff = role in ("admin", "staff")
            user.is_superuser = role == "admin"
            user.save()
            # The demo's addresses cannot receive mail: count them as verified.
            EmailAddress.objects.create(user=user, email=user.email, verified=True,
                                        primary=True)
            if role != "admin":
                user.groups.add(staff_group if role == "staff" else customer_group)
            if role == "customer":
                ledger.deposit(user.pk, DEMO_DEPOSIT, memo="demo deposit")
                _, raw = ApiKey.issue(user, "demo key")
                self.stdout.write(f"Demo customer API key (shown once): {raw}")
        return created_any

    def _sandbox_provider(self) -> None:
        """Register the sandbox upstream and import its catalog, once. `make run` starts the
        sandbox only after this command, so the import talks to a short-lived one on the same
        port and store."""
        if Provider.objects.filter(name="Sandbox").exists():
            return
        provider = Provider(name="Sandbox", api_url=settings.SANDBOX_URL,
                            low_balance_threshold=100)
        provider.api_key = DEFAULT_KEY
        provider.save()
        port = urlsplit(settings.SANDBOX_URL).port or 80
        SANDBOX_DB.parent.mkdir(exist_ok=True)
        with SandboxServer(port=port, db=str(SANDBOX_DB)):
            result = sync_catalog(provider)
        services = import_services(provider)
        self.stdout.write(f"Sandbox provider registered at {provider.api_url}: "
                          f"{result.message or result.summary()}; {len(services)} services "
                          "for sale")
