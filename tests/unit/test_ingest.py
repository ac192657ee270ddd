"""Image ingest: every format and mode to RGB, every hostile input to a precise 4xx."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from PIL import Image

from classifier.ingest import InvalidImage, decode_base64, load_image
from tests import images

LIMIT = 40_000_000


def load(data: bytes, **kwargs) -> Image.Image:
    return load_image(data, max_pixels=kwargs.pop("max_pixels", LIMIT), **kwargs)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_every_common_format_decodes_to_rgb(fmt):
    image = load(images.encode(images.photo(size=(64, 48)), fmt))
    assert image.mode == "RGB"
    assert image.size == (64, 48)


@pytest.mark.parametrize("name", sorted(images.HOSTILE))
def test_hostile_input_gets_its_status(name):
    data, status = images.HOSTILE[name]
    with pytest.raises(InvalidImage) as caught:
        load(data)
    assert caught.value.status == status, caught.value.message


def test_non_image_error_names_what_it_looks_like():
    with pytest.raises(InvalidImage, match="HTML"):
        load(images.HOSTILE["html"][0])
    with pytest.raises(InvalidImage, match="PDF"):
        load(images.HOSTILE["pdf"][0])


def test_pixel_limit_is_checked_from_the_header():
    data = images.png_bomb(3000, 3000)
    with pytest.raises(InvalidImage, match="9000000 pixels") as caught:
        load(data, max_pixels=1_000_000)
    assert caught.value.status == 413


def test_byte_limit():
    with pytest.raises(InvalidImage) as caught:
        load(images.jpeg(), max_bytes=100)
    assert caught.value.status == 413


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = images.encode(images.photo(size=(40, 20)), "JPEG", exif=exif)
    assert load(data).size == (20, 40)


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert load(images.encode(rgba, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.info["transparency"] = 0
    assert load(images.encode(palette, "PNG", transparency=0)).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "LA", "I;16", "RGBA"])
def test_other_modes(mode):
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    image = images.photo(size=(16, 16)).convert(mode)
    assert load(images.encode(image, fmt)).mode == "RGB"


def test_sixteen_bit_png_is_scaled_not_clipped():
    pixels = np.full((4, 4), 32768, dtype=np.uint16)  # half brightness in 16 bits
    data = images.encode(Image.fromarray(pixels), "PNG")
    assert Image.open(__import__("io").BytesIO(data)).mode.startswith("I")
    red, green, blue = load(data).getpixel((0, 0))
    assert 120 <= red <= 135 and red == green == blue


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = __import__("io").BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    red, green, blue = load(buffer.getvalue()).getpixel((4, 4))
    assert red > 200 and blue < 50


def test_extreme_shape_loads():
    assert load(images.encode(Image.new("RGB", (10000, 1), "red"), "PNG")).size == (10000, 1)


def test_one_pixel_image():
    assert load(images.encode(Image.new("RGB", (1, 1), "red"), "PNG")).size == (1, 1)


class TestBase64:
    data = images.png(size=(8, 8))
    text = base64.b64encode(data).decode()

    @pytest.mark.parametrize(
        "variant",
        [
            lambda t: t,
            lambda t: f"data:image/png;base64,{t}",
            lambda t: f"DATA:image/jpeg;charset=utf-8;base64,{t}",  # wrong type: decoded anyway
            lambda t: "\n".join(t[i : i + 76] for i in range(0, len(t), 76)),
            lambda t: t.rstrip("="),
            lambda t: t.replace("+", "-").replace("/", "_"),
            lambda t: f"  {t}  \r\n",
        ],
    )
    def test_accepted_forms(self, variant):
        assert decode_base64(variant(self.text)) == self.data

    @pytest.mark.parametrize(
        "text", ["", "   ", "!!!not base64!!!", "data:image/png,rawbytes", "abcde", "data:;base64,"]
    )
    def test_rejected_forms(self, text):
        with pytest.raises(InvalidImage) as caught:
            decode_base64(text)
        assert caught.value.status == 400
