from django.urls import path

from links import apis, views

# dashboard pages under /links/ (the list and detail pages come from attribution, see allumi/urls.py)
page_patterns = [
    path("new/", views.link_create_page, name="create"),
    path("<int:link_id>/edit/", views.link_edit_page, name="edit"),
    path("<int:link_id>/archive/", views.link_archive_page, name="archive"),
    path("<int:link_id>/qr.<str:fmt>", views.link_qr, name="qr"),
]

# REST API under /api/v1/links
api_patterns = [
    path("links", apis.LinkListCreateApi.as_view(), name="api_list"),
    path("links/<int:link_id>", apis.LinkDetailApi.as_view(), name="api_detail"),
]
