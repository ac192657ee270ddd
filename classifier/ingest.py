"""Turn untrusted bytes into a safe RGB `PIL.Image`, or an `InvalidImage` that says why not.

Images are recognised by their content, never by the Content-Type a client put on them, and
their size is checked from the header before any pixel is decoded:

    >>> image = load_image(open("cat.jpg", "rb").read(), max_pixels=40_000_000)
    >>> image.mode
    'RGB'
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImage

_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*?;base64,", re.I)
_WHITESPACE = re.compile(r"\s+")


def decode_base64(text: str) -> bytes:
    """Decode standard or URL-safe base64, with or without a `data:` URI prefix and padding."""
    text = _WHITESPACE.sub("", text)
    if text.lower().startswith("data:"):
        match = _DATA_URI.match(text)
        if match is None:
            raise InvalidImage("the data: URI is not base64 encoded ('data:<type>;base64,<data>')")
        text = text[match.end() :]
    if not text:
        raise InvalidImage("the image is empty")
    if "-" in text or "_" in text:
        text = text.replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("the image is not valid base64") from None


def load_image(
    data: bytes,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    min_short_side: int | None = None,
) -> Image.Image:
    """Decode `data` into an upright RGB image, or raise `InvalidImage` with a 4xx status.

    With `min_short_side`, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling), as long as its short side stays at least that long: a 4000x3000 photo bound for a
    232-pixel resize decodes about ten times faster, and the model sees nearly the same pixels.
    """
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidImage(f"the image is larger than {max_bytes} bytes", status=413)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if (claimed := image_signature(data)) is not None:
            raise InvalidImage(
                f"the data starts like a {claimed} file, but its header is corrupt or truncated",
                status=422,
            ) from None
        raise InvalidImage(
            f"not a supported image format ({_describe(data)}); send JPEG, PNG, GIF, WebP, "
            "BMP or TIFF",
            status=415,
        ) from None
    except Image.DecompressionBombError:
        raise InvalidImage(f"the image has more than {max_pixels} pixels", status=413) from None
    except Exception as error:  # Pillow raises many types for broken headers
        raise InvalidImage(f"the image header is corrupt: {error}", status=422) from None

    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels", status=422)
    if width * height > max_pixels:
        raise InvalidImage(
            f"the image is {width}x{height} = {width * height} pixels, more than the limit of "
            f"{max_pixels}",
            status=413,
        )
    try:
        image.seek(0)  # animated images: the first frame
        if min_short_side and image.format == "JPEG":
            scale = min_short_side / min(width, height)
            if scale < 1:
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except InvalidImage:
        raise
    except Exception as error:
        raise InvalidImage(
            f"the {image.format or 'image'} data is truncated or corrupt: {error}", status=422
        ) from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparent pixels become white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit and float greyscale: scale to 8 bits rather than clip at 255.
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "F" else max(float(pixels.max()), 1.0)
        pixels = np.clip(pixels * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(pixels, mode="L").convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError:
        raise InvalidImage(f"unsupported colour mode {image.mode}", status=415) from None


_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def image_signature(data: bytes) -> str | None:
    """The image format whose magic bytes `data` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _SIGNATURES.items() if data.startswith(magic)), None)


def _describe(data: bytes) -> str:
    """A short guess at what a non-image upload is, for the error message."""
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "looks like HTML"
    if head.startswith(b"%pdf"):
        return "looks like a PDF"
    if head.startswith((b"{", b"[")):
        return "looks like JSON"
    try:
        data[:512].decode("utf-8")
        return "looks like text"
    except UnicodeDecodeError:
        return f"{len(data)} bytes of unknown content"
