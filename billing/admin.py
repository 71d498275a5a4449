from django.contrib import admin, messages

from billing.models import Plan, Subscription, WhopConnection, WhopEvent, WhopMembership, WhopRefund
from billing.services import whop_event_reprocess


@admin.register(WhopConnection)
class WhopConnectionAdmin(admin.ModelAdmin):
    list_display = ["creator", "token", "secret_hint", "has_api_key", "company_id", "last_delivery_at", "last_reconciled_at"]
    search_fields = ["creator__email", "token", "company_id"]
    raw_id_fields = ["creator"]
    exclude = ["signing_secret_encrypted", "api_key_encrypted"]
    readonly_fields = ["secret_hint", "last_delivery_at", "last_reconciled_at", "created_at"]

    @admin.display(boolean=True)
    def has_api_key(self, connection):
        return connection.has_api_key


@admin.register(WhopEvent)
class WhopEventAdmin(admin.ModelAdmin):
    list_display = ["id", "event_type", "endpoint", "object_id", "status", "attempts", "received_at", "processed_at"]
    list_filter = ["status", "event_type", "endpoint"]
    search_fields = ["=webhook_id", "=object_id", "connection__creator__email"]
    list_select_related = ["connection__creator"]
    date_hierarchy = "received_at"
    actions = ["reprocess"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Reprocess the selected deliveries")
    def reprocess(self, request, queryset):
        for event in queryset:
            whop_event_reprocess(event=event)
        self.message_user(request, f"{queryset.count()} deliveries queued.", messages.SUCCESS)


@admin.register(WhopRefund)
class WhopRefundAdmin(admin.ModelAdmin):
    list_display = ["refund_id", "payment_id", "creator", "amount", "currency", "status", "created_at"]
    list_filter = ["status", "currency"]
    search_fields = ["=refund_id", "=payment_id", "creator__email"]
    raw_id_fields = ["creator"]


@admin.register(WhopMembership)
class WhopMembershipAdmin(admin.ModelAdmin):
    list_display = ["membership_id", "creator", "email", "status", "started_at", "ended_at", "plan_id"]
    list_filter = ["status"]
    search_fields = ["=membership_id", "email", "=whop_user_id", "creator__email"]
    raw_id_fields = ["creator"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "monthly_click_limit", "whop_plan_id", "is_default"]


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["creator", "plan", "active", "membership_id", "updated_at"]
    list_filter = ["plan", "active"]
    search_fields = ["creator__email", "membership_id"]
    raw_id_fields = ["creator"]
