def test_an_unknown_api_object_is_a_404_in_the_error_format(alice_api):
    response = alice_api.get("/api/v1/links/999999", HTTP_X_REQUEST_ID="req-abcdef123")

    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found.", "request_id": "req-abcdef123"}}
    assert response["X-Request-ID"] == "req-abcdef123"


def test_a_missing_key_is_a_401_with_a_fresh_request_id(client, db):
    response = client.get("/api/v1/links", HTTP_X_REQUEST_ID="bad id with spaces")

    body = response.json()
    assert response.status_code == 401
    assert body["error"]["code"] == "not_authenticated"
    assert body["error"]["request_id"] == response["X-Request-ID"] != "bad id with spaces"


def test_malformed_json_is_a_400(alice_api):
    response = alice_api.post("/api/v1/links", data="{nope", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


def test_health_and_readiness(client, db):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ok"}
