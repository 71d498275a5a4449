from django.urls import path

from attribution import apis, views

# dashboard pages under /links/ that report traffic
link_page_patterns = [
    path("", views.link_list_page, name="list"),
    path("<int:link_id>/", views.link_detail_page, name="detail"),
]

# reporting pages at the top of the dashboard
report_patterns = [
    path("overview/", views.overview_page, name="overview"),
    path("conversions/", views.conversions_page, name="conversions"),
    path("identities/<int:identity_id>/", views.identity_page, name="identity"),
    path("models/", views.models_page, name="models"),
    path("settings/", views.settings_page, name="settings"),
    path("exports/links.csv", views.export_links, name="export_links"),
    path("exports/clicks.csv", views.export_clicks, name="export_clicks"),
    path("exports/conversions.csv", views.export_conversions, name="export_conversions"),
]

# REST API under /api/v1/
api_patterns = [
    path("conversions/track", apis.ConversionTrackApi.as_view(), name="conversions_track"),
    path("conversions", apis.ConversionListApi.as_view(), name="conversions_list"),
    path("identities/<int:identity_id>", apis.IdentityDetailApi.as_view(), name="identity_detail"),
    path("links/<int:link_id>/stats", apis.LinkStatsApi.as_view(), name="link_stats"),
]
