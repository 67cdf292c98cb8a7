"""The two roles besides superusers. Customers and staff are the same user model; a staff
member is a user with is_staff and the Staff group's permissions."""

from django.contrib.auth.models import Group, Permission

STAFF_GROUP = "Staff"
CUSTOMER_GROUP = "Customers"
# Admins who are not superusers: the admin desk (providers, catalog, prices, reports) and
# every staff area, without the Django admin's power over every row.
ADMINS_GROUP = "Admins"

# Staff handle orders, refills and customers' questions; they do not configure providers
# or prices (admins, i.e. superusers, do).
STAFF_PERMISSION_APPS = ("orders",)
# The staff desk's areas (desk.models.AuditEntry's permissions) the Staff group has. Customers'
# balances and payments move money in and out of accounts: an admin grants them to the people
# who need them, on their user or on a group of their own.
STAFF_DESK_AREAS = ("orders", "refills_cancels", "tickets")


def ensure_groups() -> tuple[Group, Group]:
    staff, _ = Group.objects.get_or_create(name=STAFF_GROUP)
    customers, _ = Group.objects.get_or_create(name=CUSTOMER_GROUP)
    staff.permissions.set(
        Permission.objects.filter(content_type__app_label__in=STAFF_PERMISSION_APPS)
        | Permission.objects.filter(content_type__app_label="desk",
                                    codename__in=STAFF_DESK_AREAS)
    )
    admins, _ = Group.objects.get_or_create(name=ADMINS_GROUP)
    admins.permissions.set(Permission.objects.filter(content_type__app_label="desk"))
    return staff, customers
