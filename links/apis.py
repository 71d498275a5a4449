"""REST API for links: `/api/v1/links`, secret-key authenticated, scoped to the creator."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from allumi.core.api import paginate
from links.selectors import link_get_for_creator, link_list
from links.services import link_create, link_delete, link_update


def _raise_as_api_error(error: DjangoValidationError):
    detail = error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
    # The model calls the custom slug short_id; the API calls it slug.
    if "short_id" in detail:
        detail["slug"] = detail.pop("short_id")
    raise serializers.ValidationError(detail)


class LinkOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    short_id = serializers.CharField()
    short_url = serializers.CharField()
    url = serializers.CharField()
    destination = serializers.CharField(help_text="The URL with the link's UTM fields merged in.")
    title = serializers.CharField()
    utm_source = serializers.CharField()
    utm_medium = serializers.CharField()
    utm_campaign = serializers.CharField()
    utm_term = serializers.CharField()
    utm_content = serializers.CharField()
    tags = serializers.SerializerMethodField()
    pass_click_id = serializers.BooleanField()
    is_active = serializers.BooleanField()
    archived = serializers.BooleanField(source="is_archived")
    expires_at = serializers.DateTimeField(allow_null=True)
    expired_url = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_tags(self, link) -> list[str]:
        return sorted(tag.name for tag in link.tags.all())


class _LinkFieldsSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=4096)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    utm_source = serializers.CharField(max_length=100, required=False, allow_blank=True)
    utm_medium = serializers.CharField(max_length=100, required=False, allow_blank=True)
    utm_campaign = serializers.CharField(max_length=100, required=False, allow_blank=True)
    utm_term = serializers.CharField(max_length=100, required=False, allow_blank=True)
    utm_content = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=20)
    pass_click_id = serializers.BooleanField(required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    expired_url = serializers.CharField(max_length=4096, required=False, allow_blank=True)


class LinkListCreateApi(APIView):
    ratelimit_groups = {"POST": "link_create"}

    @extend_schema_serializer(component_name="LinkCreateInput")
    class InputSerializer(_LinkFieldsSerializer):
        slug = serializers.CharField(max_length=64, required=False, allow_blank=True)

    @extend_schema(
        operation_id="links_list",
        responses=inline_serializer(
            "LinkList", {"results": LinkOutputSerializer(many=True), "next": serializers.CharField(allow_null=True)}
        ),
    )
    def get(self, request):
        archived = {"true": True, "false": False, "all": None}.get(request.query_params.get("archived", "all"))
        links, next_cursor = paginate(
            link_list(creator=request.user, search=request.query_params.get("search", ""), archived=archived), request
        )
        return Response({"results": LinkOutputSerializer(links, many=True).data, "next": next_cursor})

    @extend_schema(operation_id="links_create", request=InputSerializer, responses={201: LinkOutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            link = link_create(creator=request.user, **serializer.validated_data)
        except DjangoValidationError as error:
            _raise_as_api_error(error)
        return Response(LinkOutputSerializer(link).data, status=status.HTTP_201_CREATED)


class LinkDetailApi(APIView):
    @extend_schema_serializer(component_name="LinkUpdateInput")
    class InputSerializer(_LinkFieldsSerializer):
        url = serializers.CharField(max_length=4096, required=False)
        is_active = serializers.BooleanField(required=False)

    @extend_schema(operation_id="links_retrieve", responses=LinkOutputSerializer)
    def get(self, request, link_id: int):
        link = link_get_for_creator(creator=request.user, link_id=link_id)
        return Response(LinkOutputSerializer(link).data)

    @extend_schema(operation_id="links_update", request=InputSerializer, responses=LinkOutputSerializer)
    def patch(self, request, link_id: int):
        link = link_get_for_creator(creator=request.user, link_id=link_id)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        tags = changes.pop("tags", None)
        try:
            link = link_update(link=link, tags=tags, **changes)
        except DjangoValidationError as error:
            _raise_as_api_error(error)
        return Response(LinkOutputSerializer(link_get_for_creator(creator=request.user, link_id=link.id)).data)

    @extend_schema(operation_id="links_destroy", responses={204: None})
    def delete(self, request, link_id: int):
        """Disable and archive the link: it stops redirecting, its history stays."""
        link_delete(link=link_get_for_creator(creator=request.user, link_id=link_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
