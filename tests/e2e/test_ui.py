"""The page at /ui, in a real headless Chromium (Debian's, driven by Playwright) against the real
`bentoml serve`. Screenshots of every test go to test-artifacts/ui/."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect, sync_playwright

from tests import ROOT, images
from tests.browser import launch, upload
from tests.e2e.conftest import API_KEY as KEY

ARTIFACTS = ROOT / "test-artifacts" / "ui"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
CROP = 64  # the test model's (tests/conftest.py)
LOOK = "Where did it look?"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


class Watched:
    """A page plus what it did wrong: script errors, CSP refusals, requests to other origins."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page, self.problems = page, []
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on(
            "console",
            lambda message: (
                "Content Security Policy" in message.text
                and self.problems.append(f"CSP: {message.text}")
            ),
        )
        page.on(
            "request",
            lambda request: (
                request.url.startswith((origin, "blob:", "data:"))
                or self.problems.append(f"outside request: {request.url}")
            ),
        )


@contextlib.contextmanager
def opened(browser, url: str, name: str, **context):
    """/ui in a fresh browser profile; its screenshot is saved whatever happens, and it must have
    done nothing wrong."""
    context = browser.new_context(**context)
    watched = Watched(context.new_page(), url)
    try:
        watched.page.goto(f"{url}/ui/")
        yield watched.page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        watched.page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        context.close()
    assert not watched.problems, watched.problems


@pytest.fixture
def page(browser, url, request):
    with opened(browser, url, request.node.name) as page:
        yield page


def card(page: Page, name: str):
    return page.locator(".card", has=page.locator(".name", has_text=name))


def shown_predictions(page: Page, name: str) -> list[tuple[str, str]]:
    rows = card(page, name).locator(".bars li")
    expect(rows.first).to_be_visible()
    return [
        (row.locator(".label").inner_text(), row.locator(".percent").inner_text())
        for row in rows.all()
    ]


def api_predictions(url: str, data: bytes, top_k: int = 5, **headers) -> list[tuple[str, str]]:
    answer = httpx.post(
        f"{url}/predict", files={"image": ("a.jpg", data)}, data={"top_k": top_k}, headers=headers
    ).json()
    return [(p["label"], f"{100 * p['score']:.1f}%") for p in answer["predictions"]]


def test_page_is_small_self_contained_and_locked_down(url):
    page = httpx.get(f"{url}/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and not [a for a in assets if "//" in a or a.startswith("http")], assets
    total = len(page.content)
    for asset in ("app.js", "style.css"):
        response = httpx.get(f"{url}/ui/{asset}")
        assert response.status_code == 200
        total += len(response.content)
    assert total <= 100_000, total
    # revalidation: unchanged files are not sent again
    again = httpx.get(f"{url}/ui/style.css", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(f"{url}/ui/nothing.js").status_code == 404
    assert httpx.get(f"{url}/ui", follow_redirects=True).url.path == "/ui/"


def test_loads_with_a_quiet_console_and_no_failed_request(browser, url):
    """Not even the icon the browser asks for: a 404 there is logged on every load."""
    context = browser.new_context()
    page, problems = context.new_page(), []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on(
        "response",
        lambda response: (
            response.status >= 400 and problems.append(f"{response.status}: {response.url}")
        ),
    )
    try:
        with page.expect_response(f"{url}/ui/favicon.svg") as icon:
            page.goto(f"{url}/ui/")
        expect(page.locator("#model")).to_contain_text("demo model")  # /info answered
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    assert not problems, problems
    assert icon.value.headers["content-type"].startswith("image/svg+xml")


def test_a_photo_gets_labelled_bars(page, url, stored_model):
    expect(page.locator("#model")).to_contain_text(str(stored_model.tag))
    expect(page.locator("#model")).to_contain_text("demo model")
    notice = page.locator("#demo-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("circle, cross, square, star, triangle")

    photo = images.jpeg(seed=4)
    upload(page, ("holiday.jpg", "image/jpeg", photo))
    shown = shown_predictions(page, "holiday.jpg")
    assert shown == api_predictions(url, photo)  # the API's answer, as labelled percentages
    one = card(page, "holiday.jpg")
    expect(one.locator(".meta")).to_have_text(re.compile(r"^answered in \d+ ms$"))
    expect(one.locator("img")).to_have_attribute("alt", "Preview of holiday.jpg")
    assert one.locator("img").evaluate("image => image.naturalWidth") == 320
    expect(page.locator("#status")).to_have_text("Classified 1 of 1 image.")


def test_a_file_that_is_not_an_image_gets_the_apis_error(page, url):
    text = b"shopping list: milk, eggs"
    upload(page, ("notes.jpg", "image/jpeg", text))
    api = httpx.post(f"{url}/predict", files={"image": ("notes.jpg", text)})
    assert api.status_code == 415
    error = card(page, "notes.jpg").locator(".error")
    expect(error).to_have_text(f"Not classified: {api.json()['error']}")
    expect(card(page, "notes.jpg").locator(".bars li")).to_have_count(0)
    expect(page.locator("#status")).to_have_text(
        "Classified 0 of 1 image; 1 could not be classified."
    )


def test_several_files_go_in_one_batch_each_with_its_own_answer(page, url):
    first, second = images.jpeg(seed=1), images.png(seed=2)
    broken = images.jpeg(seed=3)[:200]  # a JPEG cut short
    with page.expect_request(re.compile(r"/predict_batch$")) as sent:
        upload(
            page,
            ("first.jpg", "image/jpeg", first),
            ("broken.jpg", "image/jpeg", broken),
            ("second.png", "image/png", second),
        )
    assert sent.value.method == "POST"
    assert shown_predictions(page, "first.jpg") == api_predictions(url, first)
    assert shown_predictions(page, "second.png") == api_predictions(url, second)
    expect(card(page, "broken.jpg").locator(".error")).to_contain_text("Not classified: ")
    for name in ("first.jpg", "broken.jpg", "second.png"):
        expect(card(page, name).locator(".meta")).to_contain_text("3 images in one request")
    expect(page.locator("#status")).to_have_text(
        "Classified 2 of 3 images; 1 could not be classified."
    )


def test_many_files_are_split_into_requests_sent_two_at_a_time(page):
    # the test server takes 12 images per request (SERVER_ENV): 30 files make 12 + 12 + 6
    files = [(f"p{i}.png", "image/png", images.png(seed=i, size=(64, 64))) for i in range(30)]
    sent, in_flight, most = [], set(), [0]

    def started(request):
        if "/predict" in request.url:
            sent.append(request.url.rsplit("/", 1)[1])
            in_flight.add(request)
            most[0] = max(most[0], len(in_flight))

    page.on("request", started)
    page.on("requestfinished", lambda request: in_flight.discard(request))
    page.on("requestfailed", lambda request: in_flight.discard(request))
    upload(page, *files)
    expect(page.locator("#status")).to_have_text("Classified 30 of 30 images.", timeout=60_000)
    assert sent == ["predict_batch"] * 3
    assert most[0] == 2  # never more at once: a folder of photos must not flood the service


def test_an_answer_that_is_not_the_apis_is_an_error_not_a_hang(page):
    """A proxy between page and service answering 200 with its own page: simulated in the browser,
    the one request here that does not reach the real service."""
    page.route("**/predict", lambda route: route.fulfill(status=200, body="<html>portal</html>"))
    upload(page, ("proxied.jpg", "image/jpeg", images.jpeg()))
    expect(card(page, "proxied.jpg").locator(".error")).to_have_text(
        "Not classified: the answer could not be read."
    )
    expect(page.locator("#status")).to_have_text(
        "Classified 0 of 1 image; 1 could not be classified."
    )


def test_where_did_it_look_shows_the_heatmap_for_the_top_label(page, url):
    console = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    asked = []
    page.on("request", lambda request: request.url.endswith("/explain") and asked.append(request))
    upload(page, ("look.jpg", "image/jpeg", images.jpeg(seed=4)))
    [(top, _), *_] = shown_predictions(page, "look.jpg")
    one = card(page, "look.jpg")
    toggle, box = one.get_by_text(LOOK), one.locator("details.explain")
    expect(box).not_to_have_attribute("open", "")

    with page.expect_response(re.compile(r"/explain$")) as answered:
        toggle.click()
    assert answered.value.status == 200, answered.value.text()
    answer = answered.value.json()
    assert answer["explained"]["label"] == top
    description = answer["explanation"]["description"]
    heatmap = one.locator("img.heatmap")
    expect(heatmap).to_be_visible()
    expect(heatmap).to_have_attribute("alt", f"Where the model looked for “{top}”: {description}")
    natural = "image => image.decode().then(() => [image.naturalWidth, image.naturalHeight])"
    assert heatmap.evaluate(natural) == [CROP, CROP]  # the image as the model saw it
    expect(one.locator("figcaption")).to_have_text(description[0].upper() + description[1:])

    toggle.click()  # closing hides it
    expect(box).not_to_have_attribute("open", "")
    expect(heatmap).to_be_hidden()
    toggle.click()  # and opening it again shows it without asking again
    expect(heatmap).to_be_visible()
    assert len(asked) == 1
    assert not console, console


def test_where_did_it_look_when_the_service_is_busy_says_so_and_asks_again(page):
    """The refusal is simulated in the browser: the real one needs requests that overlap."""
    busy = {"error": "the service is handling its limit of 2 explanations; retry shortly"}
    page.route(
        "**/explain",
        lambda route: route.fulfill(status=503, json=busy, headers={"Retry-After": "2"}),
    )
    upload(page, ("busy.jpg", "image/jpeg", images.jpeg(seed=5)))
    one = card(page, "busy.jpg")
    expect(one.locator(".bars li")).to_have_count(5)
    toggle = one.get_by_text(LOOK)
    toggle.click()
    error = one.locator(".explanation .error")
    expect(error).to_have_text(f"Not explained: {busy['error']}. Try again in 2 s.")
    expect(one.locator(".bars li")).to_have_count(5)  # the predictions stay

    page.unroute("**/explain")
    toggle.click()
    toggle.click()  # closed and opened again: asked again
    expect(one.locator("img.heatmap")).to_be_visible()
    expect(error).to_have_count(0)


DROP = """([name, bytes, type]) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], name, {type}));
    return transfer;
}"""


def test_drag_and_drop_and_paste(page):
    small = {"size": (64, 64)}
    drop = page.evaluate_handle(DROP, ["dropped.png", list(images.png(6, **small)), "image/png"])
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": drop})
    expect(page.locator("#drop-zone")).to_have_class(re.compile("dragging"))
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": drop})
    expect(card(page, "dropped.png").locator(".bars li")).to_have_count(5)
    expect(page.locator("#drop-zone")).not_to_have_class(re.compile("dragging"))

    paste = page.evaluate_handle(DROP, ["image.png", list(images.png(7, **small)), "image/png"])
    page.evaluate(
        "transfer => document.dispatchEvent(new ClipboardEvent('paste', "
        "{clipboardData: transfer, bubbles: true}))",
        paste,
    )
    expect(card(page, "image.png").locator(".bars li")).to_have_count(5)


def test_keyboard_alone_can_choose_files_and_the_number_of_results(page):
    def choose(key: str, name: str, seed: int):
        with page.expect_file_chooser() as chooser:
            page.keyboard.press(key)
        chooser.value.set_files(
            [{"name": name, "mimeType": "image/jpeg", "buffer": images.jpeg(seed=seed)}]
        )
        return chooser.value

    # Playwright intercepts file choosers only while someone listens, and starts listening
    # asynchronously: listen throughout, so that no key press can beat it
    page.on("filechooser", lambda chooser: None)
    page.keyboard.press("Tab")  # the first control on the page
    expect(page.locator("#choose")).to_be_focused()
    assert choose("Enter", "first.jpg", 8).is_multiple()
    expect(card(page, "first.jpg").locator(".bars li")).to_have_count(5)

    page.keyboard.press("Tab")
    expect(page.locator("#photo")).to_be_focused()
    camera = choose("Space", "snap.jpg", 9)
    assert camera.element.get_attribute("capture") == "environment"  # a phone opens its camera
    expect(card(page, "snap.jpg").locator(".bars li")).to_have_count(5)

    page.keyboard.press("Tab")
    expect(page.locator("#top-k")).to_be_focused()
    page.keyboard.press("ArrowUp")  # 5 -> 3
    expect(page.locator("#top-k")).to_have_value("3")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#choose")).to_be_focused()
    choose("Enter", "three.jpg", 10)
    expect(card(page, "three.jpg").locator(".bars li")).to_have_count(3)

    # every control has a name a screen reader can say
    for role, name in (("button", "Choose images"), ("button", "Take a photo")):
        expect(page.get_by_role(role, name=name)).to_be_visible()
    expect(page.get_by_label("Results per image")).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_accessibility_violations(browser, url, scheme):
    """axe-core's checks (contrast, labels, landmarks, ...) with a result, where the model looked
    for it, and an error shown."""
    with opened(browser, url, f"accessibility-{scheme}", color_scheme=scheme) as page:
        upload(page, ("photo.jpg", "image/jpeg", images.jpeg()))
        upload(page, ("text.jpg", "image/jpeg", b"not an image"))
        expect(page.locator(".card:not([aria-busy])")).to_have_count(2)
        page.locator("#key-box summary").click()
        card(page, "photo.jpg").get_by_text(LOOK).click()
        expect(card(page, "photo.jpg").locator("img.heatmap")).to_be_visible()
        result = Axe().run(page)
        assert result.violations_count == 0, result.generate_report()


def test_fits_a_phone(browser, url):
    with opened(browser, url, "phone", **PHONE) as page:
        upload(page, ("phone.jpg", "image/jpeg", images.jpeg(seed=9, size=(1200, 1600))))
        expect(card(page, "phone.jpg").locator(".bars li")).to_have_count(5)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["viewport"]["width"], width  # no sideways scrolling
        for button in ("#choose", "#photo"):
            box = page.locator(button).bounding_box()
            assert box["height"] >= 44 and box["width"] >= 44, box  # big enough for a finger


def test_with_an_api_key(browser, keyed_server):
    server, tag = keyed_server
    with opened(browser, server.url, "api-key") as page:
        # asked for the key, with the key box open and focused
        expect(page.locator("#model")).to_contain_text("needs an API key")
        expect(page.locator("#api-key")).to_be_focused()
        upload(page, ("before.jpg", "image/jpeg", images.jpeg()))
        expect(card(page, "before.jpg").locator(".error")).to_contain_text("API key")

        page.fill("#api-key", KEY)
        page.get_by_role("button", name="Use this key").click()
        expect(page.locator("#model")).to_contain_text(tag)
        expect(page.locator("#model")).to_contain_text("from a checkpoint file")
        expect(page.locator("#demo-notice")).to_be_hidden()  # not the demo model
        photo = images.jpeg(seed=2)
        upload(page, ("after.jpg", "image/jpeg", photo))
        headers = {"Authorization": f"Bearer {KEY}"}
        assert shown_predictions(page, "after.jpg") == api_predictions(server.url, photo, **headers)

        # kept for this tab only, unless asked to remember it
        assert page.evaluate("sessionStorage.length") == 1
        assert page.evaluate("localStorage.length") == 0
        page.reload()
        expect(page.locator("#model")).to_contain_text(tag)
        page.locator("#key-box summary").click()
        expect(page.locator("#api-key")).to_have_value(KEY)
        page.check("#remember-key")
        page.get_by_role("button", name="Use this key").click()
        assert page.evaluate("[sessionStorage.length, localStorage.length]") == [0, 1]


def test_readme_shows_the_page():
    readme = (ROOT / "README.md").read_text()
    [shot] = re.findall(r"!\[[^\]]+\]\((docs/ui[^)]*\.png)\)", readme)
    assert (ROOT / shot).stat().st_size > 10_000
    assert Path(ROOT / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
