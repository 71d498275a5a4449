"""The one JSON error format of the API, and keyset pagination.

Errors: {"error": {"code": "...", "message": "...", "request_id": "...", "fields"?: {...}}}.
Lists: {"results": [...], "next": <opaque cursor or null>}, newest first.
"""

import base64
import binascii

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from allumi.core.middleware import current_request_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class ApiError(exceptions.APIException):
    """An error with a stable machine-readable code, raised from views and services."""

    def __init__(self, code: str, message: str, status_code: int = status.HTTP_400_BAD_REQUEST):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    error = {"code": code, "message": message, "request_id": current_request_id()}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_response(code: str, message: str, status_code: int, fields: dict | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, fields), status=status_code)


def _flatten(detail) -> dict:
    if isinstance(detail, dict):
        return {key: [str(item) for item in (value if isinstance(value, list) else [value])] for key, value in detail.items()}
    return {"non_field_errors": [str(item) for item in detail]} if isinstance(detail, list) else {}


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_request",
    exceptions.Throttled: "rate_limited",
}


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a server error: Django's handler500 answers it
    if isinstance(exc, ApiError):
        body = error_body(exc.error_code, str(exc.detail))
    elif isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        first = next(iter(fields.items()), ("", ["Invalid input."]))
        message = f"{first[0]}: {first[1][0]}" if first[0] and first[0] != "non_field_errors" else first[1][0]
        body = error_body("invalid_request", message, fields)
    else:
        code = next((code for cls, code in _CODES.items() if isinstance(exc, cls)), "error")
        body = error_body(code, str(exc.detail))
    return Response(body, status=response.status_code, headers={k: v for k, v in response.items()})


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "id":
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor", "cursor is not a cursor this API returned.") from None


def _parse_limit(raw: str | None) -> int:
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError("invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT}.") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError("invalid_limit", f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return limit


def paginate(queryset, request) -> tuple[list, str | None]:
    """One page of `queryset`, newest (highest id) first, and the cursor of the next page."""
    limit = _parse_limit(request.query_params.get("limit"))
    cursor = request.query_params.get("cursor")
    queryset = queryset.order_by("-id")
    if cursor:
        queryset = queryset.filter(id__lt=_decode_cursor(cursor))
    rows = list(queryset[: limit + 1])
    page, more = rows[:limit], len(rows) > limit
    return page, (_encode_cursor(page[-1].id) if more else None)
