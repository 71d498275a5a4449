"""The public endpoint of Allumi's marketing site: demo requests."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import parsers, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from allumi.accounts.services import demo_request_capture
from allumi.core.api import ApiError
from allumi.core.client_ip import client_ip

_RECEIVED = {"status": "received"}


class DemoCaptureApi(APIView):
    """`POST /api/demo/capture`: JSON or a form (urlencoded, or multipart as `fetch` sends a
    FormData); CORS for the MARKETING_ORIGIN origins only.

    `website` is a honeypot that people never see: a request that fills it gets the same 202 as any
    other and nothing is stored or sent.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser]
    ratelimit_groups = {"POST": "demo_capture"}

    @extend_schema_serializer(component_name="DemoCaptureInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        email = serializers.EmailField(max_length=254)
        company = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
        community_size = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
        message = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
        website = serializers.CharField(required=False, allow_blank=True, default="", help_text="Leave empty.")

    @extend_schema(
        operation_id="demo_capture", request=InputSerializer, auth=[],
        responses={202: {"type": "object", "properties": {"status": {"type": "string", "example": "received"}}}},
    )
    def post(self, request):
        if not isinstance(request.data, dict):
            raise ApiError("invalid_request", "The body must be a JSON object or a form.")
        if str(request.data.get("website") or "").strip():
            return Response(_RECEIVED, status=status.HTTP_202_ACCEPTED)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        demo_request_capture(
            name=data["name"], email=data["email"], company=data["company"], community_size=data["community_size"],
            message=data["message"], ip=client_ip(request),
        )
        return Response(_RECEIVED, status=status.HTTP_202_ACCEPTED)
