from django.contrib import admin

from billing.models import WhopConnection


@admin.register(WhopConnection)
class WhopConnectionAdmin(admin.ModelAdmin):
    list_display = ["creator", "token", "masked_secret", "created_at"]
    search_fields = ["creator__email", "token"]
    raw_id_fields = ["creator"]
    exclude = ["signing_secret"]
    readonly_fields = ["masked_secret", "created_at"]
