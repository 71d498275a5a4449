"""drf-spectacular post-processing: every API operation documents the shared error answers."""

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            },
        }
    },
}
_ERRORS = {
    "400": "Invalid request: see error.code and error.fields",
    "401": "Missing or invalid API key",
    "403": "Not allowed",
    "404": "Not found, or not yours",
    "415": "Unsupported body type",
    "429": "Rate limited; retry after the Retry-After header's seconds",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["ApiError"] = _ERROR_SCHEMA
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in _ERRORS.items():
                responses.setdefault(
                    status,
                    {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}},
                )
    return result
