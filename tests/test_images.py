"""Decoding untrusted uploads and the MNIST-style digit preprocessing, on real MNIST digits."""
import io

import numpy as np
import pytest
from PIL import Image

from dlcourse.served.digit_variants import VARIANTS, render
from dlcourse.errors import BadInput, EmptyDrawing
from dlcourse.served.images import load_image, to_mnist_digit
from dlcourse.mnist import load_split


@pytest.fixture(scope="module")
def test_digits(mnist_dir):
    return load_split(mnist_dir, "test")


def png_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **save_args)
    return buffer.getvalue()


def test_mnist_digit_survives_preprocessing_almost_unchanged(test_digits):
    images, _ = test_digits
    differences = [
        np.abs(to_mnist_digit(Image.fromarray(digit).convert("RGB")).astype(int) - digit).mean()
        for digit in images[:200]
    ]
    # of 255: most come back to within rounding; a few digits whose box is not 20 px move by a pixel
    assert np.median(differences) < 1
    assert np.mean(np.array(differences) < 8) > 0.95


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_come_back_close_to_the_original(test_digits, variant):
    images, _ = test_digits
    rng = np.random.default_rng(1)
    for digit in images[:20]:
        back = to_mnist_digit(render(digit, variant, rng)).astype(float) / 255
        original = digit.astype(float) / 255
        # the same digit, in the same place: correlation with the original is high
        assert np.corrcoef(back.ravel(), original.ravel())[0, 1] > 0.6, variant


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "L", "I;16", "CMYK", "RGB", "1", "F"])
def test_every_common_image_mode_decodes_to_the_same_digit(test_digits, mode):
    images, _ = test_digits
    dark_on_light = Image.fromarray(255 - images[0]).resize((112, 112))
    if mode == "I;16":
        converted = Image.fromarray((np.asarray(dark_on_light, np.uint16) * 257))
        assert converted.mode == "I;16"
    else:
        converted = dark_on_light.convert(mode)
    expected = to_mnist_digit(dark_on_light.convert("RGB"))
    fmt = "TIFF" if mode in ("I;16", "CMYK", "F") else "PNG"
    decoded = load_image(png_bytes(converted, format=fmt))
    assert decoded.mode == "RGB"
    got = to_mnist_digit(decoded)
    assert np.abs(got.astype(int) - expected).mean() < 12, mode


def test_transparent_drawing_is_ink_on_white():
    drawing = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    drawing.paste((0, 0, 0, 255), (90, 30, 110, 170))  # a vertical stroke: a "1"
    digit = to_mnist_digit(load_image(png_bytes(drawing, format="PNG")))
    assert digit[14, 14] > 200 and digit[0, 0] == 0


def test_exif_orientation_is_honoured(test_digits):
    images, _ = test_digits
    upright = Image.fromarray(255 - images[0]).resize((84, 84)).convert("RGB")
    stored = upright.rotate(90, expand=True)  # what the camera wrote; EXIF says "rotate 270 to view"
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = load_image(png_bytes(stored, format="JPEG", exif=exif, quality=95))
    assert np.abs(to_mnist_digit(decoded).astype(int) - to_mnist_digit(upright)).mean() < 15


def test_a_callers_own_picture_is_turned_upright_in_a_copy(test_digits):
    """Decoded files are turned in place (no copy); a picture the caller passes stays as the caller has it."""
    images, _ = test_digits
    stored = Image.fromarray(255 - images[0]).resize((84, 42)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    opened = Image.open(io.BytesIO(png_bytes(stored, format="JPEG", exif=exif, quality=95)))
    decoded = load_image(opened)
    assert decoded.size == (42, 84) and opened.size == (84, 42) and opened.getexif()[0x0112] == 6
    assert load_image(png_bytes(stored, format="JPEG", exif=exif, quality=95)).size == (42, 84)


def test_empty_drawing_says_so():
    with pytest.raises(EmptyDrawing, match="empty"):
        to_mnist_digit(Image.new("RGB", (280, 280), "white"))
    with pytest.raises(EmptyDrawing):
        to_mnist_digit(load_image(png_bytes(Image.new("RGBA", (280, 280), (0, 0, 0, 0)), format="PNG")))


def test_huge_image_is_refused_before_its_pixels_are_decoded():
    # 30000x30000 declared in the header; decoding it would need 900 MB
    bomb = Image.new("L", (10, 10))
    data = bytearray(png_bytes(bomb, format="PNG"))
    import struct
    import zlib

    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    with pytest.raises(BadInput, match="too many pixels|megapixels"):
        load_image(bytes(data))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, I am text", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|damaged"),
    ],
)
def test_bad_bytes_get_a_clear_message(data, message):
    with pytest.raises(BadInput, match=message):
        load_image(data)


def test_truncated_jpeg_and_animation_and_tiny_image_are_refused(test_digits):
    images, _ = test_digits
    jpeg = png_bytes(Image.fromarray(images[0]).resize((200, 200)), format="JPEG")
    with pytest.raises(BadInput, match="truncated|damaged"):
        load_image(jpeg[: len(jpeg) // 2])
    frames = [Image.fromarray(images[i]).convert("P") for i in range(2)]
    gif = png_bytes(frames[0], format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(BadInput, match="animation"):
        load_image(gif)
    with pytest.raises(BadInput, match="1x1"):
        load_image(png_bytes(Image.new("RGB", (1, 1)), format="PNG"))
