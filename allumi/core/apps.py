from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "allumi.core"
    label = "core"

    def ready(self):
        from corsheaders.signals import check_request_enabled

        from allumi.core import alerts  # noqa: F401  (registers the core checks and the task)
        from allumi.core.cors import any_origin_allowed

        check_request_enabled.connect(any_origin_allowed, dispatch_uid="allumi.core.cors.any_origin_allowed")
