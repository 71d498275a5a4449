from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "allumi.integrations"
    label = "integrations"
    verbose_name = "Integrations"
