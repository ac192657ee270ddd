"""Every kind of hostile input against one server, while a well-behaved client keeps using it:
each gets its 4xx JSON error (or a right answer where the input is legal, just odd), never a
5xx; the good client is never disturbed; the server stays up and gives its memory back."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import psutil
import pytest
from PIL import Image

from tests import images
from tests.e2e.conftest import SERVER_ENV, slow_upload

MiB = 1024 * 1024
MAX_BATCH = int(SERVER_ENV["CLASSIFIER_MAX_BATCH_IMAGES"])
JSON = "application/json"


def upload(data: bytes, **fields) -> dict:
    return {"files": {"image": ("upload.jpg", data, "image/jpeg")}, "data": fields}


def as_json(body) -> dict:
    return raw(json.dumps(body).encode(), JSON)


def legal_odd_images() -> dict[str, bytes]:
    frames = [images.photo(seed, (64, 48)).convert("P") for seed in range(3)]
    animated = images.encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    return {
        "10000x1": images.encode(Image.new("RGB", (10000, 1), "red"), "PNG"),
        "1x10000": images.encode(Image.new("RGB", (1, 10000), "blue"), "PNG"),
        "1x1": images.encode(Image.new("RGB", (1, 1), "green"), "PNG"),
        "animated GIF": animated,
        "16-bit PNG": images.encode(images.photo().convert("I;16"), "PNG"),
        "CMYK JPEG": images.encode(images.photo().convert("CMYK"), "JPEG"),
        **images.RECOVERABLE,
    }


def big_upload(size: int) -> dict:
    """A multipart upload of `size` bytes, streamed with no Content-Length: the limit must count
    the bytes as they come."""

    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'
        for _ in range(size // MiB):
            yield b"\xff" * MiB
        yield b"\r\n--x--\r\n"

    return {"content": chunks(), "headers": {"content-type": "multipart/form-data; boundary=x"}}


def raw(content: bytes, content_type: str) -> dict:
    return {"content": content, "headers": {"content-type": content_type}}


def cases() -> list[tuple[str, str, dict, int]]:
    """(name, path, httpx keyword arguments, expected status)"""
    ok = images.jpeg(3)
    encoded = base64.b64encode(ok).decode()
    found = []
    for name, (data, status) in images.HOSTILE.items():
        found.append((f"upload {name}", "/predict", upload(data), status))
        b64 = {"image": base64.b64encode(data).decode()}
        found.append((f"base64 {name}", "/predict_base64", as_json(b64), status))
    for name, data in legal_odd_images().items():
        found.append((f"legal {name}", "/predict", upload(data), 200))
    for top_k in ("0", "-1", str(10**9), "five", "2.5", "", "1e3"):
        found.append((f"top_k {top_k!r}", "/predict", upload(ok, top_k=top_k), 400))
    for top_k in (0, -1, 10**9, 10**30, "five", 2.5, [], {}):
        body = {"image": encoded, "top_k": top_k}
        found.append((f"JSON top_k {top_k!r}", "/predict_base64", as_json(body), 400))
    bad_images = [5, None, True, [], {}, ["a"], "", "!!!garbage!!!", "data:image/png,abc",
                  "data:image/png;base64,", "data:;base64,@@@@"]  # fmt: skip
    for image in bad_images:
        found.append((f"JSON image {image!r}", "/predict_base64", as_json({"image": image}), 400))
    for body in ([], None, "a string", 3, {"top_k": 3}, {"img": encoded}):
        found.append((f"JSON body {body!r}", "/predict_base64", as_json(body), 400))
    legal_base64 = {
        "whitespace": "\n ".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)),
        "data URI": f"data:image/jpeg;base64,{encoded}",
        "URL-safe": base64.urlsafe_b64encode(ok).decode().rstrip("="),
    }
    for name, image in legal_base64.items():
        found.append((f"base64 {name}", "/predict_base64", as_json({"image": image}), 200))
    too_many = [("images", (f"{i}.jpg", images.jpeg(i, (32, 32)))) for i in range(MAX_BATCH + 1)]
    one = [("images", ("a.jpg", ok))]
    found += [
        ("JSON not UTF-8", "/predict_base64", raw(b'{"image": "\xff\xfe"}', JSON), 400),
        ("JSON cut short", "/predict_base64", raw(b'{"image": "ab', JSON), 400),
        ("JSON to /predict", "/predict", as_json({"image": encoded}), 415),
        ("multipart to /predict_base64", "/predict_base64", upload(ok), 415),
        ("text/plain body", "/predict", raw(b"hello", "text/plain"), 415),
        ("no body", "/predict", {}, 415),
        ("missing image field", "/predict", {"files": {"picture": ("a.jpg", ok)}}, 400),
        ("a URL in the file field", "/predict", {"files": {"image": (None, "http://x/y")}}, 400),
        ("50 MB upload", "/predict", upload(b"\xff\xd8" + bytes(50 * MiB)), 413),
        ("50 MB streamed", "/predict", big_upload(50 * MiB), 413),
        ("no images in a batch", "/predict_batch", {"files": {"top_k": (None, "3")}}, 400),
        ("too many images in a batch", "/predict_batch", {"files": too_many}, 413),
        ("batch top_k 0", "/predict_batch", {"files": one, "data": {"top_k": "0"}}, 400),
    ]
    return found


def rss_mb(pid: int) -> float:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / MiB


@pytest.fixture(scope="module")
def target(server):
    """The session's server: whatever the hostile requests leave behind, the modules after this
    one find it there too."""
    return server


def test_hostile_requests_get_4xx_good_ones_are_undisturbed_memory_returns(target):
    good = images.jpeg(7)
    with httpx.Client(base_url=target.url, timeout=120) as http:
        expected = http.post("/predict", **upload(good)).json()["predictions"]
        for _ in range(20):  # warm up every code path the good client uses
            http.post("/predict", **upload(good))
        before = rss_mb(target.process.pid)

        stop = threading.Event()
        good_answers: list[int] = []

        def good_client() -> None:
            with httpx.Client(base_url=target.url, timeout=120) as client:
                while not stop.is_set():
                    response = client.post("/predict", **upload(good))
                    same = (
                        response.status_code == 200 and response.json()["predictions"] == expected
                    )
                    good_answers.append(200 if same else response.status_code)

        meanwhile = threading.Thread(target=good_client)
        meanwhile.start()
        wrong = []
        try:
            for _ in range(2):  # twice: anything the first round leaks, the second doubles
                for name, path, options, status in cases():
                    response = http.post(path, **options)
                    body = response.json()
                    if response.status_code != status or (
                        status != 200 and not (isinstance(body.get("error"), str) and body["error"])
                    ):
                        wrong.append((name, status, response.status_code, response.text[:200]))
        finally:
            stop.set()
            meanwhile.join()
        assert not wrong, "\n".join(map(str, wrong))
        assert good_answers and set(good_answers) == {200}, good_answers

        assert target.process.poll() is None and http.get("/readyz").status_code == 200
        after = rss_mb(target.process.pid)
    print(f"server RSS {before:.0f} MB before, {after:.0f} MB after")
    assert after < before + 150, f"RSS grew from {before:.0f} to {after:.0f} MB"


def test_a_request_slower_than_the_timeout_gets_504_and_the_server_goes_on(make_server):
    """A client that uploads too slowly (or a request that waits too long) is cut off at
    CLASSIFIER_REQUEST_TIMEOUT_S with a JSON 504, and holds nothing afterwards."""
    server = make_server(CLASSIFIER_REQUEST_TIMEOUT_S="1")
    response = httpx.post(
        f"{server.url}/predict", timeout=60, **slow_upload(images.jpeg(), chunks=4)
    )  # 2 s
    assert response.status_code == 504, response.text
    assert "1" in response.json()["error"]
    answer = httpx.post(f"{server.url}/predict", timeout=60, **upload(images.jpeg()))
    assert answer.status_code == 200, answer.text
