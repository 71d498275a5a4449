from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy
from django_ratelimit.decorators import ratelimit

from allumi.accounts import apis, views
from allumi.accounts.forms import CreatorPasswordResetForm, LoginForm
from allumi.core.ratelimits import ip_key, rate_for

app_name = "accounts"

urlpatterns = [
    # sign-up and sign-in
    path("signup/", views.signup, name="signup"),
    path("confirm/<str:token>/", views.confirm_email, name="confirm_email"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="accounts/login.html", authentication_form=LoginForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # password reset
    path(
        "password-reset/",
        ratelimit(key=ip_key, rate=rate_for("password_reset"), method="POST", block=True, group="password_reset")(
            auth_views.PasswordResetView.as_view(
            template_name="accounts/password_reset.html",
            form_class=CreatorPasswordResetForm,
            email_template_name="accounts/email/password_reset.txt",
            html_email_template_name="accounts/email/password_reset.html",
            subject_template_name="accounts/email/password_reset_subject.txt",
            success_url=reverse_lazy("accounts:password_reset_done"),
            )
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="accounts/password_reset_confirm.html",
            success_url=reverse_lazy("accounts:password_reset_complete"),
        ),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="accounts/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    # the creator's own settings
    path("profile/", views.profile, name="profile"),
    path("profile/email/", views.email_preferences, name="email_preferences"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("keys/", views.api_keys, name="api_keys"),
    path("keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api_key_revoke"),
]

# the marketing site's demo requests, mounted at /api/demo/
demo_api_patterns = [
    path("capture", apis.DemoCaptureApi.as_view(), name="capture"),
]
