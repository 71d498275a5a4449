from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "allumi.core"
    label = "core"
