"""REST API for conversions, identities and link stats, and the public track endpoint."""

import json
from datetime import datetime

from django.conf import settings
from django.db.models import Prefetch, Q
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import parsers, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from allumi.accounts.authentication import PublishableKeyAuthentication, SecretKeyAuthentication
from allumi.accounts.models import ApiKey
from allumi.core.api import ApiError, paginate
from attribution.conversions import attribution_settings_for, conversion_record
from attribution.credit import MODELS
from attribution.models import Click, Conversion, Credit, Identity
from attribution.selectors import link_stats
from attribution.services import request_signals, visitor_id_from_cookie
from links.selectors import link_get_for_creator

MAX_METADATA_BYTES = 4096


class PlainTextJSONParser(parsers.BaseParser):
    """navigator.sendBeacon sends JSON as text/plain; read it as JSON."""

    media_type = "text/plain"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json.loads(stream.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise parsers.ParseError(f"The body is not valid JSON: {error}") from None


def _model_param(request) -> str:
    model = request.query_params.get("model") or attribution_settings_for(request.user.id).default_model
    if model not in MODELS:
        raise ApiError("invalid_model", f"model must be one of: {', '.join(MODELS)}.")
    return model


# --- tracking ---------------------------------------------------------------------------------


class ConversionTrackApi(APIView):
    """`POST /api/v1/conversions/track`: browsers with the publishable key, servers with the secret key."""

    authentication_classes = [SecretKeyAuthentication, PublishableKeyAuthentication]
    parser_classes = [parsers.JSONParser, PlainTextJSONParser]
    ratelimit_groups = {"POST": "track"}

    @extend_schema_serializer(component_name="ConversionTrackInput")
    class InputSerializer(serializers.Serializer):
        key = serializers.CharField(required=False, max_length=100, write_only=True)
        event = serializers.CharField(max_length=64)
        external_id = serializers.CharField(required=False, max_length=255)
        email = serializers.EmailField(required=False, max_length=254)
        click_id = serializers.RegexField(r"^c_[A-Za-z0-9]{6,40}$", required=False)
        visitor_id = serializers.CharField(required=False, max_length=100)
        amount = serializers.DecimalField(required=False, max_digits=12, decimal_places=2, min_value=0)
        currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False)
        occurred_at = serializers.DateTimeField(required=False)
        metadata = serializers.DictField(required=False)

        def validate_metadata(self, value):
            encoded = json.dumps(value)
            if len(encoded) > MAX_METADATA_BYTES:
                raise serializers.ValidationError(f"metadata may be at most {MAX_METADATA_BYTES} bytes of JSON.")
            if "\\u0000" in encoded:
                # PostgreSQL cannot store NUL characters; no honest metadata carries them.
                raise serializers.ValidationError("metadata may not contain NUL characters.")
            return value

        def validate_visitor_id(self, value):
            visitor_id = visitor_id_from_cookie(value)
            if visitor_id is None:
                raise serializers.ValidationError("visitor_id must be an allumi_vid cookie value set by Allumi.")
            return visitor_id

    @extend_schema_serializer(component_name="ConversionTrackOutput")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()

    @extend_schema(operation_id="conversions_track", request=InputSerializer, responses={202: OutputSerializer, 200: OutputSerializer})
    def post(self, request):
        if not isinstance(request.data, dict):
            raise ApiError("invalid_request", "The body must be a JSON object.")
        api_key = request.auth
        is_browser = api_key.kind == ApiKey.Kind.PUBLISHABLE
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if is_browser and "occurred_at" in data:
            raise ApiError("invalid_request", "occurred_at may only be sent with a secret key.")
        visitor_id = data.get("visitor_id") or visitor_id_from_cookie(request.COOKIES.get(settings.VISITOR_COOKIE_NAME)) or ""
        conversion, created = conversion_record(
            creator=api_key.creator,
            event=data["event"],
            source=Conversion.Source.TRACK,
            external_id=data.get("external_id"),
            email=data.get("email", ""),
            click_id=data.get("click_id", ""),
            visitor_id=visitor_id,
            amount=data.get("amount"),
            currency=data.get("currency", ""),
            occurred_at=data.get("occurred_at"),
            metadata=data.get("metadata"),
            # A server's own address and agent say nothing about the visitor.
            signals=request_signals(request) if is_browser else None,
        )
        return Response(
            self.OutputSerializer(conversion).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        )


# --- reading ----------------------------------------------------------------------------------


class CreditSerializer(serializers.Serializer):
    link_id = serializers.IntegerField()
    short_id = serializers.CharField(source="link.short_id")
    weight = serializers.DecimalField(max_digits=7, decimal_places=6)
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2)


class ConversionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField(allow_null=True)
    event = serializers.CharField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, allow_null=True)
    refunded_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    source = serializers.CharField()
    status = serializers.CharField()
    identity_id = serializers.IntegerField(allow_null=True)
    confidence = serializers.IntegerField(allow_null=True)
    credits = CreditSerializer(many=True, source="model_credits")


class ConversionListApi(APIView):
    @extend_schema(
        operation_id="conversions_list",
        parameters=[
            OpenApiParameter("model", str, enum=MODELS),
            OpenApiParameter("status", str, enum=[s.value for s in Conversion.Status]),
            OpenApiParameter("limit", int),
            OpenApiParameter("cursor", str),
        ],
        responses=inline_serializer(
            "ConversionList", {"results": ConversionOutputSerializer(many=True), "next": serializers.CharField(allow_null=True)}
        ),
    )
    def get(self, request):
        model = _model_param(request)
        conversions = Conversion.objects.filter(creator=request.user)
        status_filter = request.query_params.get("status")
        if status_filter:
            if status_filter not in Conversion.Status.values:
                raise ApiError("invalid_status", f"status must be one of: {', '.join(Conversion.Status.values)}.")
            conversions = conversions.filter(status=status_filter)
        conversions = conversions.prefetch_related(
            Prefetch("credits", queryset=Credit.objects.filter(model=model).select_related("link").order_by("-weight", "id"), to_attr="model_credits")
        )
        page, next_cursor = paginate(conversions, request)
        return Response({"results": ConversionOutputSerializer(page, many=True).data, "next": next_cursor})


class IdentityDetailApi(APIView):
    @extend_schema(
        operation_id="identities_retrieve",
        responses=inline_serializer(
            "Identity",
            {
                "id": serializers.IntegerField(),
                "identifiers": serializers.ListField(child=serializers.DictField()),
                "clicks": serializers.ListField(child=serializers.DictField()),
                "conversions": serializers.ListField(child=serializers.IntegerField()),
            },
        ),
    )
    def get(self, request, identity_id: int):
        identity = Identity.objects.filter(pk=identity_id, creator=request.user).first()
        if identity is None:
            raise ApiError("not_found", "Not found.", 404)
        while identity.merged_into_id:  # an old id keeps working after a merge
            identity = identity.merged_into
        identifiers = list(identity.identifiers.order_by("first_seen", "id").values("kind", "value", "first_seen"))
        visitors = [row["value"] for row in identifiers if row["kind"] == "visitor"]
        click_ids = [row["value"] for row in identifiers if row["kind"] == "click"]
        clicks = (
            Click.objects.filter(creator=request.user)
            .filter(Q(visitor_id__in=visitors) | Q(public_id__in=click_ids))
            .select_related("link")
            .order_by("occurred_at", "id")[:1000]
        )
        return Response(
            {
                "id": identity.id,
                "identifiers": [
                    {"kind": row["kind"], "value": row["value"], "first_seen": serializers.DateTimeField().to_representation(row["first_seen"])}
                    for row in identifiers
                ],
                "clicks": [
                    {
                        "click_id": click.public_id,
                        "link_id": click.link_id,
                        "short_id": click.link.short_id,
                        "occurred_at": serializers.DateTimeField().to_representation(click.occurred_at),
                        "is_bot": click.is_bot,
                    }
                    for click in clicks
                ],
                "conversions": list(identity.conversions.order_by("-id").values_list("id", flat=True)),
            }
        )


class LinkStatsApi(APIView):
    @extend_schema_serializer(component_name="LinkStats")
    class OutputSerializer(serializers.Serializer):
        clicks = serializers.IntegerField()
        unique_visitors = serializers.IntegerField()
        bot_clicks = serializers.IntegerField()
        conversions = serializers.IntegerField()
        revenue = serializers.DecimalField(max_digits=14, decimal_places=2)

    @extend_schema(
        operation_id="links_stats",
        parameters=[OpenApiParameter("start", datetime), OpenApiParameter("end", datetime), OpenApiParameter("model", str, enum=MODELS)],
        responses=OutputSerializer,
    )
    def get(self, request, link_id: int):
        link = link_get_for_creator(creator=request.user, link_id=link_id)
        bounds = {
            name: serializers.DateTimeField().to_internal_value(request.query_params[name])
            for name in ("start", "end")
            if request.query_params.get(name)
        }
        model = _model_param(request)
        return Response(self.OutputSerializer(link_stats(link=link, model=model, **bounds)).data)
