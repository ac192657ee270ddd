"""--explain: heatmap paths that mirror the inputs and never collide, PNGs saved whole, requests
to /explain with their retries, resuming, and the options refused before anything is sent.

The service is played by httpx.MockTransport handlers; tests/e2e/test_client_explain.py sends to
the real one.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest

from classifier.client.__main__ import main
from classifier.client.explaining import Explaining, heatmap_paths
from classifier.client.records import Record
from classifier.client.sending import Limits, Sender

PNG = b"\x89PNG\r\n\x1a\n a heatmap"
PREDICTIONS = [
    {"label": "cat", "index": 0, "score": 0.75},
    {"label": "dog", "index": 1, "score": 0.25},
]


def answer(explained: str = "cat", png: bytes = PNG) -> dict:
    return {
        "model": "resnet50:x",
        "predictions": PREDICTIONS,
        "explained": {"label": explained, "index": 0, "score": 0.75},
        "explanation": {
            "method": "grad-cam",
            "layer": "layer4",
            "description": "Grad-CAM on layer4 (7x7)",
            "heatmap_png": base64.b64encode(png).decode(),
            "attributions": [[0.0, 1.0], [0.5, 0.25]],
        },
    }


def names(heatmaps: dict[str, Path], folder: Path) -> list[str]:
    return [str(path.relative_to(folder)) for path in heatmaps.values()]


def test_heatmaps_mirror_the_paths_in_the_folders_named(tmp_path):
    photos = tmp_path / "photos"
    (photos / "a").mkdir(parents=True)
    paths = [photos / "a" / "b.jpg", photos / "c.webp", photos / "IMG_0001", tmp_path / "d.png"]
    for path in paths:
        path.touch()
    heatmaps = heatmap_paths(paths, [photos, tmp_path / "d.png"], tmp_path / "out")
    assert list(heatmaps) == list(map(str, paths))
    assert names(heatmaps, tmp_path / "out") == ["a/b.png", "c.png", "IMG_0001.png", "d.png"]


def test_heatmaps_never_share_a_name(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
    paths = [first / "b.jpg", first / "b.png", first / "B.gif", second / "b.jpg", first / "b.jpg"]
    heatmaps = heatmap_paths(paths, [first, second], tmp_path / "out")
    assert names(heatmaps, tmp_path / "out") == ["b.png", "b.png.png", "B.gif.png", "b.jpg.png"]
    # the same files in the same order: the same names, which --resume relies on
    assert heatmap_paths(paths, [first, second], tmp_path / "out") == heatmaps


def test_an_answer_is_recorded_once_its_heatmap_is_saved(tmp_path):
    heatmap = tmp_path / "out" / "a" / "b.png"
    explaining = Explaining({"photos/a/b.jpg": heatmap})
    record = explaining.record(Path("photos/a/b.jpg"), answer())
    assert heatmap.read_bytes() == PNG and not list(heatmap.parent.glob("*.partial"))
    assert (record.explained, record.method, record.heatmap) == ("cat", "grad-cam", str(heatmap))
    assert [p.label for p in record.predictions] == ["cat", "dog"] and record.final
    assert "heatmap_png" not in record.model_dump_json() and explaining.done(record)


def test_a_heatmap_that_cannot_be_saved_is_sent_again_on_resume(tmp_path):
    (tmp_path / "out").write_text("a file where the folder should be")
    explaining = Explaining({"b.jpg": tmp_path / "out" / "b.png"})
    record = explaining.record(Path("b.jpg"), answer())
    assert record.error.startswith(f"cannot save {tmp_path / 'out' / 'b.png'}")
    assert not record.final


def test_resume_keeps_only_explanations_whose_heatmap_is_still_there(tmp_path):
    heatmap = tmp_path / "b.png"
    explaining = Explaining({"b.jpg": heatmap})
    saved = explaining.record(Path("b.jpg"), answer())
    assert explaining.done(saved)
    heatmap.unlink()
    assert not explaining.done(saved)
    predicted = Record(path="b.jpg", model="m", predictions=PREDICTIONS[:1], status=200)
    assert not explaining.done(predicted)  # from a run without --explain
    assert explaining.done(Record(path="b.jpg", error="not a supported image", status=415))


def send(handler, paths: list[Path], explaining: Explaining, retries: int = 3):
    async def main():
        async def sleep(seconds):
            pass

        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            sender = Sender(client, 2, retries=retries, sleep=sleep, explaining=explaining)
            return await sender.send(paths), sender.retried

    return asyncio.run(main())


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "b.jpg"
    path.write_bytes(b"jpeg bytes")
    return path


def test_explanations_go_to_explain_with_the_label_asked_for_after_busy_answers(tmp_path, image):
    requests = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if len(requests) < 3:
            return httpx.Response(503, json={"error": "busy"}, headers={"Retry-After": "1"})
        return httpx.Response(200, json=answer("dog"))

    explaining = Explaining(heatmap_paths([image], [image], tmp_path / "out"), label="dog")
    [record], retried = send(handler, [image], explaining)
    assert [request.url.path for request in requests] == ["/explain"] * 3 and retried == 2
    body = requests[-1].content
    assert b'name="label"\r\n\r\ndog' in body and b'name="top_k"\r\n\r\n2' in body
    assert b'name="image"; filename="b.jpg"' in body
    heatmap = tmp_path / "out" / "b.png"
    assert (record.status, record.explained, record.heatmap) == (200, "dog", str(heatmap))
    assert heatmap.read_bytes() == PNG


def test_the_service_s_error_is_the_record_and_nothing_is_saved(tmp_path, image):
    explaining = Explaining(heatmap_paths([image], [image], tmp_path / "out"))
    error = {"error": "the data starts like a JPEG file, but it is truncated"}
    [record], retried = send(lambda request: httpx.Response(422, json=error), [image], explaining)
    assert (record.error, record.status, record.final, retried) == (error["error"], 422, True, 0)
    assert not (tmp_path / "out").exists()


def test_an_answer_that_is_no_explanation_is_not_final(tmp_path, image):
    explaining = Explaining(heatmap_paths([image], [image], tmp_path / "out"))
    broken = answer()
    broken["explanation"]["heatmap_png"] = "not base64!"
    for body in ({"model": "m", "predictions": PREDICTIONS}, broken):

        def handler(request: httpx.Request, body: dict = body) -> httpx.Response:
            return httpx.Response(200, json=body)

        [record], _ = send(handler, [image], explaining)
        assert "not the service's answer" in record.error and not record.final
    assert not (tmp_path / "out").exists()


def test_explanations_default_to_the_service_s_own_limit():
    info = {"model": "m", "labels": ["a"], "limits": {"max_explanations": 3}}
    assert Limits.from_info(info).max_explanations == 3
    assert Limits.from_info({"model": "m", "labels": ["a"]}).max_explanations == 2


def test_a_label_needs_explain(image, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([str(image), "--label", "cat"])
    assert stopped.value.code == 2 and "--label needs --explain" in capsys.readouterr().err


def test_another_run_s_heatmaps_are_never_replaced_unasked(tmp_path, image, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.png").write_bytes(PNG)
    # refused before /info is asked: nothing listens on the URL
    url = "http://127.0.0.1:9"
    assert main([str(image), "--explain", str(tmp_path / "out"), "--url", url]) == 2
    assert "--overwrite to replace it" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="cannot reach"):  # --overwrite goes on, to /info
        main([str(image), "--explain", str(tmp_path / "out"), "--url", url, "--overwrite"])
