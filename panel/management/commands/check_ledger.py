from typing import Any

from django.core.management.base import BaseCommand, CommandError

from panel.ledger import mismatched_balances


class Command(BaseCommand):
    help = "Prove balance == sum(ledger entries) for every customer; fail naming any that differ."

    def handle(self, *args: Any, **options: Any) -> None:
        bad = mismatched_balances()
        for user_id, username, balance, total in bad:
            self.stderr.write(f"user {user_id} ({username}): balance {balance} "
                              f"!= sum of entries {total}")
        if bad:
            raise CommandError(f"{len(bad)} customer(s) whose balance does not match the ledger")
        self.stdout.write(self.style.SUCCESS("every balance equals the sum of its entries"))
