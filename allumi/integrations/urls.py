from django.urls import path

from allumi.integrations import views

app_name = "integrations"

# dashboard pages under /settings/integrations/
urlpatterns = [
    path("", views.endpoints_page, name="list"),
    path("<int:endpoint_id>/", views.endpoint_page, name="detail"),
    path("<int:endpoint_id>/disable/", views.endpoint_disable_page, name="disable"),
    path("<int:endpoint_id>/enable/", views.endpoint_enable_page, name="enable"),
    path("<int:endpoint_id>/delete/", views.endpoint_delete_page, name="delete"),
    path("<int:endpoint_id>/test/", views.endpoint_test_page, name="test"),
    path("<int:endpoint_id>/deliveries/<int:delivery_id>/", views.delivery_page, name="delivery"),
    path("<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/", views.delivery_redeliver_page, name="redeliver"),
]
