"""Access control against the real server: API key, open health probes, /metrics, CORS."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time

import httpx
import pytest

from tests import ROOT, images
from tests.e2e.conftest import API_KEY as KEY
from tests.e2e.conftest import serve_until_exit
from tests.unit.test_refusals import BAD_SETTINGS


@pytest.fixture(scope="module")
def keyed(keyed_server):
    """The shared server with an API key from the environment, /metrics left open and one CORS
    origin (tests/e2e/conftest.py)."""
    server, _ = keyed_server
    return server


@pytest.fixture(scope="module")
def keyed_by_file(model_service_server):
    """The shared server with the key in a file, /metrics behind the key too, and the APIs
    calling the ImageModel service (tests/e2e/conftest.py)."""
    return model_service_server


def predict(url: str, headers: dict | None = None) -> httpx.Response:
    files = {"image": ("a.jpg", images.jpeg(), "image/jpeg")}
    return httpx.post(f"{url}/predict", files=files, headers=headers, timeout=60)


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("server_name", ["keyed", "keyed_by_file"])
def test_explanations_need_the_key_too_in_both_batching_modes(request, server_name):
    url = request.getfixturevalue(server_name).url
    info = httpx.get(f"{url}/info", headers=bearer(KEY), timeout=60).json()
    assert info["batching"] == {"keyed": "continuous", "keyed_by_file": "bentoml"}[server_name]
    files = {"image": ("a.jpg", images.jpeg(), "image/jpeg")}
    assert httpx.post(f"{url}/explain", files=files, timeout=60).status_code == 401
    response = httpx.post(f"{url}/explain", files=files, headers=bearer(KEY), timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["explanation"]["method"] == "integrated-gradients"


@pytest.mark.parametrize("server_name", ["keyed", "keyed_by_file"])
def test_every_api_needs_the_key(request, server_name):
    url = request.getfixturevalue(server_name).url
    assert predict(url, bearer(KEY)).status_code == 200
    wrong = [
        bearer("wrong"),
        bearer(KEY + "x"),
        {"Authorization": KEY},
        {"Authorization": "Basic " + KEY},
    ]
    for headers in (None, *wrong):
        response = predict(url, headers)
        assert response.status_code == 401, (headers, response.text)
        assert "API key" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")
    for path, method in [
        ("/predict_batch", "POST"),
        ("/predict_base64", "POST"),
        ("/classify", "POST"),
        ("/info", "GET"),
    ]:
        assert httpx.request(method, url + path).status_code == 401, path
    assert httpx.get(url + "/info", headers=bearer(KEY)).status_code == 200


@pytest.mark.parametrize("server_name", ["keyed", "keyed_by_file"])
def test_health_probes_and_docs_stay_open(request, server_name):
    url = request.getfixturevalue(server_name).url
    for path in ("/livez", "/readyz", "/docs.json", "/", "/ui/", "/ui/app.js"):
        assert httpx.get(url + path).status_code == 200, path


def test_open_prefixes_do_not_open_the_apis(keyed):
    """/ui/ and /static_content/ are open: a path that climbs out of them must not reach an API
    without the key (sent raw: HTTP clients would resolve the dots themselves)."""
    host, port = keyed.url.removeprefix("http://").split(":")
    for path in ("/ui/../info", "/ui/%2e%2e/info", "/static_content/../info", "/uinfo", "/ui.js"):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (401, 404), (path, response.status)
        assert b"labels" not in body, path


def test_the_schema_says_which_paths_need_the_key(keyed):
    schema = httpx.get(keyed.url + "/docs.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert schema["paths"]["/predict"]["post"]["security"] == [{"apiKey": []}]
    assert schema["paths"]["/info"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in schema["paths"]["/readyz"]["get"]
    assert "401" in schema["paths"]["/predict"]["post"]["responses"]


def test_metrics_open_or_protected_by_setting(keyed, keyed_by_file):
    assert httpx.get(keyed.url + "/metrics").status_code == 200
    assert httpx.get(keyed_by_file.url + "/metrics").status_code == 401
    assert httpx.get(keyed_by_file.url + "/metrics", headers=bearer(KEY)).status_code == 200


def test_the_key_never_reaches_the_logs(keyed, keyed_by_file):
    for server in (keyed, keyed_by_file):
        predict(server.url, bearer(KEY))
        predict(server.url, bearer("a-wrong-key-to-look-for"))
        deadline = time.monotonic() + 10
        while "status=401" not in (log := server.log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)  # the access log is written after the answer
        # the access log has the requests (with their status), so there is something to search
        assert "method=POST,path=/predict" in log and "status=401" in log
        assert KEY not in log and "a-wrong-key-to-look-for" not in log


def test_cors_allows_only_the_configured_origin(keyed, server):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    allowed = httpx.options(
        keyed.url + "/predict", headers={"Origin": "https://app.example", **preflight}
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    refused = httpx.options(
        keyed.url + "/predict", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in refused.headers
    # errors carry the header too, so that a page can show them
    answer = predict(keyed.url, {"Origin": "https://app.example"})
    assert answer.status_code == 401
    assert answer.headers["access-control-allow-origin"] == "https://app.example"
    # closed by default: the default server allows no origin
    default = httpx.options(server.url + "/predict", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in default.headers
    plain = predict(server.url, {"Origin": "https://app.example"})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def test_without_a_key_setting_no_key_is_needed(server):
    assert predict(server.url).status_code == 200


def test_the_python_client_sends_the_key(keyed, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(images.jpeg())
    command = [sys.executable, "-m", "classifier.client", str(photo), "--url", keyed.url]
    refused = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "API key" in refused.stderr, refused.stderr
    answered = subprocess.run(
        [*command, "--api-key", KEY], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert answered.returncode == 0, answered.stderr
    assert "resnet50:" in answered.stdout


def test_bad_settings_stop_the_server_with_a_clear_message(stored_model, tmp_path):
    """Every bad setting and its message: tests/unit/test_refusals.py; here, the real server."""
    settings, words = BAD_SETTINGS[1]  # the key given twice: it must not be echoed
    code, output = serve_until_exit(str(stored_model.tag), tmp_path / "serve.log", **settings)
    assert code != 0, output
    assert "Traceback" not in output and "refuses to start" in output and words in output, output
    assert KEY[:6] not in output, "a refused setting's value is never echoed: it may be the key"
