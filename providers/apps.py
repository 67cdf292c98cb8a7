from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Upstream providers"

    def ready(self) -> None:
        from providers import client, metrics

        # Every process that calls upstreams counts its calls for /metrics.
        if metrics.record_call not in client.CALL_OBSERVERS:
            client.CALL_OBSERVERS.append(metrics.record_call)
