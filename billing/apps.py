from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self):
        from allumi.core.alerts import register_check
        from billing.checks import webhook_failures_check

        register_check("payment_webhook_failures", webhook_failures_check)
