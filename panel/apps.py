from django.apps import AppConfig


class PanelConfig(AppConfig):
    name = "panel"
    verbose_name = "Panel"

    def ready(self) -> None:
        # Connects the accounts' signal receivers (unlocking after a password reset).
        from panel import accounts  # noqa: F401
