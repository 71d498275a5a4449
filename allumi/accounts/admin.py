from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from allumi.accounts.forms import CreatorAdminCreationForm
from allumi.accounts.models import ApiKey, Creator, DemoRequest, EmailLog


@admin.register(Creator)
class CreatorAdmin(UserAdmin):
    ordering = ["-date_joined"]
    list_display = ["email", "name", "email_confirmed_at", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", ("email_confirmed_at", admin.EmptyFieldListFilter)]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name", "currency", "email_confirmed_at"]}),
        ("Email", {"fields": ["conversion_alerts", "weekly_report", "weekly_report_weekday"]}),
        ("Access", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["date_joined", "last_login"]}),
    ]
    add_form = CreatorAdminCreationForm
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "creator", "kind", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["kind", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "creator__email"]
    list_select_related = ["creator"]
    raw_id_fields = ["creator"]
    readonly_fields = ["key_hash", "prefix", "created_at", "last_used_at"]


@admin.register(EmailLog)
class EmailLogAdmin(admin.ModelAdmin):
    """What was sent to whom, and what failed. Rows are written by the email service only."""

    list_display = ["created_at", "kind", "recipient", "subject", "status", "attempts", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["recipient", "subject", "creator__email"]
    date_hierarchy = "created_at"
    raw_id_fields = ["creator"]
    readonly_fields = [field.name for field in EmailLog._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DemoRequest)
class DemoRequestAdmin(admin.ModelAdmin):
    list_display = ["last_submitted_at", "name", "email", "company", "community_size", "submissions"]
    search_fields = ["name", "email", "company", "message"]
    date_hierarchy = "created_at"
    readonly_fields = ["submissions", "ip", "received_on", "created_at", "last_submitted_at"]
    fields = ["name", "email", "company", "community_size", "message", *readonly_fields]
