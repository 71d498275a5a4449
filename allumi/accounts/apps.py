from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "allumi.accounts"
    label = "accounts"

    def ready(self):
        from allumi.accounts.emails import operator_alert_send
        from allumi.core.alerts import register_operator_mailer

        # Operator alerts go through the email log and Celery too (core cannot import accounts).
        register_operator_mailer(operator_alert_send)
