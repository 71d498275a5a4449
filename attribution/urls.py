from django.urls import path

from attribution import views

# dashboard pages under /links/ that report traffic
link_page_patterns = [
    path("", views.link_list_page, name="list"),
    path("<int:link_id>/", views.link_detail_page, name="detail"),
]
