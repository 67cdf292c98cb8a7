from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """Customers and staff are one model; what each may do comes from groups and permissions.

    The balance and the ledger arrive with the orders work; the model exists from the first
    migration so that swapping the user model is never needed.
    """

    class Meta:
        db_table = "panel_user"
