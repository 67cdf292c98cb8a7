from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from panel.models import User
from panel.roles import ensure_groups

DEMO_USERS = [
    # username, password, role
    ("admin", "admin-demo-pass", "admin"),
    ("staff", "staff-demo-pass", "staff"),
    ("customer", "customer-demo-pass", "customer"),
]


class Command(BaseCommand):
    help = "Load the demo data the first time (idempotent) and print the demo logins."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            created = self._users()
        self.stdout.write("Demo logins (http://127.0.0.1:8000/login/):")
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
            if role != "admin":
                user.groups.add(staff_group if role == "staff" else customer_group)
        return created_any
