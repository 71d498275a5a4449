from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from allumi.accounts.urls import demo_api_patterns
from allumi.core import health, metrics
from attribution import redirect as short_links
from attribution.urls import api_patterns as attribution_api_patterns
from attribution.urls import link_page_patterns, report_patterns
from attribution.views import home
from billing.urls import page_patterns as billing_page_patterns
from billing.urls import webhook_patterns as billing_webhook_patterns
from links.urls import api_patterns as link_api_patterns
from links.urls import page_patterns as link_page_edit_patterns

urlpatterns = [
    # the short links themselves
    path("l/<str:short_id>", short_links.follow_link, name="follow_link"),
    # webhooks from Whop
    path("webhooks/", include((billing_webhook_patterns, "billing_webhooks"))),
    # dashboard
    path("", home, name="home"),
    path("accounts/", include("allumi.accounts.urls")),
    path("", include((report_patterns, "reports"))),
    path("links/", include((link_page_patterns + link_page_edit_patterns, "links"))),
    path("settings/billing/", include((billing_page_patterns, "billing"))),
    path("settings/integrations/", include("allumi.integrations.urls")),
    # REST API and its documentation
    path("api/v1/", include((link_api_patterns, "links_api"))),
    path("api/v1/", include((attribution_api_patterns, "attribution_api"))),
    path("api/demo/", include((demo_api_patterns, "demo_api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
    # operations
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]

handler400 = "allumi.core.errors.bad_request"
handler403 = "allumi.core.errors.permission_denied"
handler404 = "allumi.core.errors.not_found"
handler500 = "allumi.core.errors.server_error"
