from django.contrib import admin

from links.models import Link, Tag


@admin.register(Link)
class LinkAdmin(admin.ModelAdmin):
    list_display = ["short_id", "title", "creator", "url", "is_active", "archived_at", "expires_at", "created_at"]
    list_filter = ["is_active", ("archived_at", admin.EmptyFieldListFilter), "pass_click_id", "created_at"]
    search_fields = ["short_id", "title", "url", "creator__email"]
    list_select_related = ["creator"]
    raw_id_fields = ["creator"]
    filter_horizontal = ["tags"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "creator"]
    search_fields = ["name", "creator__email"]
    raw_id_fields = ["creator"]
