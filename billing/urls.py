from django.urls import path

from billing import views, webhooks

# webhooks under /webhooks/
webhook_patterns = [
    path("whop/<str:token>", webhooks.whop_webhook, name="whop_webhook"),
    path("whop", webhooks.platform_webhook, name="platform_webhook"),
]

# dashboard pages under /settings/billing/
page_patterns = [
    path("whop/", views.whop_settings_page, name="whop_settings"),
    path("whop/events/<int:event_id>/reprocess/", views.whop_event_reprocess_page, name="whop_event_reprocess"),
]
