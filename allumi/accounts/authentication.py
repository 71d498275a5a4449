from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_authenticate


class SecretKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer sk_live_…` — the creator's secret API key."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme != self.keyword or not raw.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <secret API key>'.")
        api_key = api_key_authenticate(raw=raw.strip(), kind=ApiKey.Kind.SECRET)
        if api_key is None:
            raise exceptions.AuthenticationFailed("This API key is not valid or has been revoked.")
        return api_key.creator, api_key

    def authenticate_header(self, request):
        return self.keyword


class SecretKeyScheme(OpenApiAuthenticationExtension):
    target_class = SecretKeyAuthentication
    name = "secretKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A secret API key (sk_live_…)."}


class PublishableKeyAuthentication(authentication.BaseAuthentication):
    """`X-Allumi-Key: pk_live_…` (or `key` in the body, for sendBeacon): browsers on creators' pages."""

    def authenticate(self, request):
        raw = request.headers.get("X-Allumi-Key")
        if not raw and request.method == "POST":
            data = request.data
            raw = data.get("key") if isinstance(data, dict) else None
        if not raw:
            return None
        api_key = api_key_authenticate(raw=str(raw).strip(), kind=ApiKey.Kind.PUBLISHABLE)
        if api_key is None:
            raise exceptions.AuthenticationFailed("This publishable key is not valid or has been revoked.")
        return api_key.creator, api_key


class PublishableKeyScheme(OpenApiAuthenticationExtension):
    target_class = PublishableKeyAuthentication
    name = "publishableKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Allumi-Key", "description": "A publishable key (pk_live_…)."}
