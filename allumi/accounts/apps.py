from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "allumi.accounts"
    label = "accounts"
