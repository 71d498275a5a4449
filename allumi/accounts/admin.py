from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from allumi.accounts.forms import CreatorAdminCreationForm
from allumi.accounts.models import ApiKey, Creator


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
