from django.contrib import admin

from attribution.models import Click


@admin.register(Click)
class ClickAdmin(admin.ModelAdmin):
    list_display = [
        "public_id", "link", "creator", "occurred_at", "is_bot", "bot_reason", "is_unique", "device_type",
        "browser", "os", "country", "referrer_domain", "ip",
    ]
    list_filter = ["is_bot", "bot_reason", "is_unique", "device_type", "method", "country"]
    search_fields = ["public_id", "visitor_id", "ip", "link__short_id", "creator__email", "referrer_domain"]
    list_select_related = ["link", "creator"]
    raw_id_fields = ["link", "creator"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False  # counting every click for the pager is the slow part at scale

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False
