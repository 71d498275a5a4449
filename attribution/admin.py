from django.contrib import admin, messages

from attribution.conversions import conversions_enqueue_attribution
from attribution.identities import identity_merge_revert
from attribution.models import (
    AttributionSettings,
    Click,
    Conversion,
    Credit,
    Identifier,
    Identity,
    IdentityMerge,
    Recompute,
)


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by Allumi itself: operators look, they don't type them in."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Click)
class ClickAdmin(_ReadOnlyAdmin):
    list_display = [
        "public_id", "link", "creator", "occurred_at", "is_bot", "bot_reason", "is_unique", "device_type",
        "browser", "os", "country", "referrer_domain", "ip",
    ]
    list_filter = ["is_bot", "bot_reason", "is_unique", "device_type", "method", "country"]
    search_fields = ["=public_id", "=visitor_id", "=ip", "link__short_id", "creator__email", "referrer_domain"]
    list_select_related = ["link", "creator"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False  # counting every click for the pager is the slow part at scale


class IdentifierInline(admin.TabularInline):
    model = Identifier
    fields = ["kind", "value", "first_seen"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Identity)
class IdentityAdmin(_ReadOnlyAdmin):
    list_display = ["id", "creator", "merged_into", "created_at"]
    list_filter = [("merged_into", admin.EmptyFieldListFilter)]
    search_fields = ["=id", "creator__email", "identifiers__value"]
    list_select_related = ["creator", "merged_into"]
    inlines = [IdentifierInline]


@admin.register(Identifier)
class IdentifierAdmin(_ReadOnlyAdmin):
    list_display = ["kind", "value", "identity", "creator", "first_seen"]
    list_filter = ["kind"]
    search_fields = ["=value", "creator__email"]
    list_select_related = ["identity", "creator"]


@admin.register(IdentityMerge)
class IdentityMergeAdmin(_ReadOnlyAdmin):
    list_display = ["id", "creator", "survivor", "merged", "evidence_kind", "evidence_value", "created_at", "reverted_at"]
    list_filter = ["evidence_kind", ("reverted_at", admin.EmptyFieldListFilter)]
    search_fields = ["=evidence_value", "creator__email", "=survivor__id", "=merged__id"]
    list_select_related = ["creator", "survivor", "merged"]
    actions = ["revert"]

    @admin.action(description="Revert the selected merges and re-attribute their conversions")
    def revert(self, request, queryset):
        reverted = 0
        for merge in queryset.filter(reverted_at__isnull=True).order_by("-id"):
            conversions_enqueue_attribution(identity_merge_revert(merge=merge))
            reverted += 1
        self.message_user(request, f"Reverted {reverted} merge(s); their conversions are being re-attributed.", messages.SUCCESS)


class CreditInline(admin.TabularInline):
    model = Credit
    fields = ["model", "link", "weight", "revenue"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversion)
class ConversionAdmin(_ReadOnlyAdmin):
    list_display = ["id", "creator", "event", "source", "status", "amount", "refunded_amount", "currency", "confidence", "occurred_at"]
    list_filter = ["status", "source", "event", "currency"]
    search_fields = ["=external_id", "=email", "=click_id", "creator__email"]
    list_select_related = ["creator"]
    date_hierarchy = "occurred_at"
    inlines = [CreditInline]
    actions = ["reattribute"]

    @admin.action(description="Re-attribute the selected conversions")
    def reattribute(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        conversions_enqueue_attribution(ids)
        self.message_user(request, f"{len(ids)} conversion(s) queued for attribution.", messages.SUCCESS)


@admin.register(Credit)
class CreditAdmin(_ReadOnlyAdmin):
    list_display = ["conversion", "model", "link", "weight", "revenue"]
    list_filter = ["model"]
    search_fields = ["=conversion__external_id", "link__short_id"]
    list_select_related = ["conversion", "link"]


@admin.register(AttributionSettings)
class AttributionSettingsAdmin(admin.ModelAdmin):
    list_display = ["creator", "default_model", "window_days", "half_life_days", "respect_do_not_track"]
    list_filter = ["default_model"]
    search_fields = ["creator__email"]
    raw_id_fields = ["creator"]


@admin.register(Recompute)
class RecomputeAdmin(_ReadOnlyAdmin):
    list_display = ["id", "creator", "done", "total", "progress", "started_at", "finished_at"]
    list_filter = [("finished_at", admin.EmptyFieldListFilter)]
    search_fields = ["creator__email"]
    list_select_related = ["creator"]
