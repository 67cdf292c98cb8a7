"""Accounts made before email verification (the demo's, staff-created ones) keep logging in:
the address they already have counts as verified. Later accounts verify by link."""

from collections import Counter

from django.db import migrations


def mark_existing_emails_verified(apps, schema_editor):
    User = apps.get_model("panel", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    have = set(EmailAddress.objects.values_list("user_id", flat=True))
    taken = {e.lower() for e in EmailAddress.objects.values_list("email", flat=True)}
    rows = []
    # An address two accounts share is verified for neither: its owner cannot be told.
    counts = Counter(e.lower() for e in User.objects.exclude(email="").values_list("email", flat=True))
    shared = {e for e, n in counts.items() if n > 1}
    for user_id, email in User.objects.exclude(email="").order_by("id").values_list("id", "email"):
        email = email.lower()
        if user_id in have or email in taken or email in shared:
            continue
        taken.add(email)
        rows.append(EmailAddress(user_id=user_id, email=email, verified=True, primary=True))
    EmailAddress.objects.bulk_create(rows)


class Migration(migrations.Migration):

    dependencies = [
        ("panel", "0003_user_time_zone"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [
        migrations.RunPython(mark_existing_emails_verified, migrations.RunPython.noop),
    ]
