from django.apps import AppConfig


class PanelTables(AppConfig):
    """The panel app's models without its ready(), which wires up the account pages' signals
    (allauth, axes): the floor has no accounts, only the tables."""

    name = "panel"
    label = "panel"
    default_auto_field = "django.db.models.BigAutoField"
