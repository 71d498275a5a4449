from django.contrib import admin, messages

from allumi.integrations.models import WebhookDelivery, WebhookEndpoint
from allumi.integrations.services import delivery_redeliver


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["id", "creator", "url", "is_active", "consecutive_failures", "disabled_reason", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["creator__email", "url"]
    raw_id_fields = ["creator"]
    exclude = ["secret_encrypted"]
    readonly_fields = ["secret_hint", "consecutive_failures", "created_at"]

    def has_add_permission(self, request):
        return False  # endpoints are made by their creator, who alone sees the secret


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "event_type", "event_id", "endpoint", "status", "attempts", "last_status_code", "next_attempt_at", "created_at"]
    list_filter = ["status", "event_type"]
    search_fields = ["=event_id", "endpoint__creator__email", "endpoint__url"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    actions = ["redeliver"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver the selected deliveries")
    def redeliver(self, request, queryset):
        sent = 0
        for delivery in queryset.select_related("endpoint"):
            if delivery.endpoint.is_active:
                delivery_redeliver(delivery=delivery)
                sent += 1
        self.message_user(request, f"{sent} deliveries queued (disabled endpoints skipped).", messages.SUCCESS)
