from django.contrib import admin

from allumi.core.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["name", "firing", "since", "last_value", "last_message", "last_checked_at"]
    list_filter = ["firing"]
    readonly_fields = ["name", "firing", "since", "last_value", "last_message", "last_checked_at"]

    def has_add_permission(self, request):
        return False
