from django.apps import AppConfig


class AttributionConfig(AppConfig):
    name = "attribution"

    def ready(self):
        from allumi.core.metrics import register_scrape_collector
        from attribution.metrics import AttributionCollector

        register_scrape_collector(AttributionCollector())
