from django.apps import AppConfig


class AttributionConfig(AppConfig):
    name = "attribution"

    def ready(self):
        from allumi.core.alerts import register_check
        from allumi.core.metrics import register_scrape_collector
        from attribution.metrics import AttributionCollector, attribution_rate_check

        register_scrape_collector(AttributionCollector())
        register_check("attribution_rate", attribution_rate_check)
