from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "allumi.core"
    label = "core"

    def ready(self):
        from allumi.core import alerts  # noqa: F401  (registers the core checks and the task)
