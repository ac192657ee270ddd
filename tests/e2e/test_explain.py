"""POST /explain on the real server: the answer's shape, its errors, its limit, its docs."""

from __future__ import annotations

import base64
import concurrent.futures
import io

import httpx
import pytest
from PIL import Image

from classifier.testing.models import SHAPE_LABELS
from tests import images
from tests.e2e.test_api import assert_error, assert_predictions, predict

CROP = 64  # the test model's (tests/conftest.py)


def explain(http, data: bytes, **fields) -> httpx.Response:
    files = {"image": ("upload", data, "image/jpeg")}
    return http.post("/explain", files=files, data={k: str(v) for k, v in fields.items()})


def test_explains_the_top_label_over_the_image_as_the_model_saw_it(http):
    response = explain(http, images.jpeg())
    assert response.status_code == 200, response.text
    body = response.json()
    assert_predictions(body)
    assert body["explained"] == body["predictions"][0]
    explanation = body["explanation"]
    # the test model's last stage is 2x2 at 64 pixels: too coarse for Grad-CAM
    assert explanation["method"] == "integrated-gradients" and explanation["layer"] is None
    assert "too coarse" in explanation["description"]
    heatmap = Image.open(io.BytesIO(base64.b64decode(explanation["heatmap_png"])))
    assert heatmap.format == "PNG" and heatmap.size == (CROP, CROP)
    grid = explanation["attributions"]
    assert len(grid) == CROP and all(len(row) == CROP for row in grid)
    values = [value for row in grid for value in row]
    assert min(values) >= 0 and max(values) == 1


def test_the_predictions_are_those_of_predict(http):
    data = images.jpeg(3)
    explained = explain(http, data, top_k=3).json()
    predicted = http.post("/predict", files={"image": ("a", data)}, data={"top_k": "3"}).json()
    assert explained["predictions"] == predicted["predictions"]


def test_explains_the_label_asked_for_even_outside_the_top_k(http):
    body = explain(http, images.jpeg(), top_k=1).json()
    last = [label for label in SHAPE_LABELS if label != body["predictions"][0]["label"]][-1]
    response = explain(http, images.jpeg(), top_k=1, label=last)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["explained"]["label"] == last
    assert answer["explained"]["index"] == SHAPE_LABELS.index(last)
    assert len(answer["predictions"]) == 1 and answer["predictions"][0]["label"] != last
    assert answer["explanation"]["attributions"] != body["explanation"]["attributions"]


def test_a_label_the_model_does_not_have_is_the_clients_to_fix(http):
    assert_error(explain(http, images.jpeg(), label="giraffe"), 400, "giraffe", "/info")


@pytest.mark.parametrize("top_k", ["0", "6", "five"])
def test_top_k_out_of_range(http, top_k):
    assert_error(explain(http, images.jpeg(), top_k=top_k), 400, "top_k")


@pytest.mark.parametrize(
    "name", ["empty", "text", "truncated_png_early", "corrupt_jpeg", "bomb", "wide_bomb"]
)
def test_bad_images_get_the_same_answer_as_from_predict(http, name):
    data, status = images.HOSTILE[name]
    assert_error(explain(http, data), status)


def test_beyond_its_limit_explanations_are_refused_politely_and_predictions_go_on(make_server):
    server = make_server(CLASSIFIER_MAX_EXPLANATIONS="1")
    data = images.jpeg(size=(1600, 1200))  # slow enough to decode that requests overlap
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            explanations = [pool.submit(explain, http, data) for _ in range(8)]
            prediction = pool.submit(predict, http, data)
            answers = [future.result() for future in explanations]
            assert prediction.result().status_code == 200, prediction.result().text
    statuses = sorted(response.status_code for response in answers)
    assert 200 in statuses and 503 in statuses, statuses
    assert set(statuses) == {200, 503}, statuses
    for refused in (response for response in answers if response.status_code == 503):
        assert_error(refused, 503, "limit of 1 explanations")
        assert int(refused.headers["retry-after"]) >= 1


def test_documented_with_its_fields_and_an_example(http):
    spec = http.get("/docs.json").json()
    operation = spec["paths"]["/explain"]["post"]
    assert "where the model looked" in operation["description"]
    for status in ("200", "400", "413", "415", "422", "503"):
        assert status in operation["responses"], status
    [form] = operation["requestBody"]["content"].values()
    assert {"image", "label", "top_k"} <= set(resolved(spec, form["schema"])["properties"])
    [answer] = operation["responses"]["200"]["content"].values()
    example = resolved(spec, answer["schema"])["example"]
    assert example["explanation"]["method"] == "grad-cam"


def resolved(spec: dict, schema: dict) -> dict:
    if "$ref" not in schema:
        return schema
    return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]


def test_its_model_time_is_a_metric(http):
    explain(http, images.jpeg())
    assert "classifier_explain_seconds_count" in http.get("/metrics").text
