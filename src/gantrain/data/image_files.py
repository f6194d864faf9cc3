"""Reading image files: every dataset and command opens images here, the same way.

:func:`open_image` decodes the whole file and raises :class:`BadImageFile` (naming the
file and the reason) for an empty, truncated, corrupt or non-image file;
:func:`gantrain.data.bad_files.SkipBadFiles` turns that into the ``trainer.bad_files``
policy.  Colour: ``dataset.channels`` decides, never the files.  Every file is
converted with PIL: with ``channels=3`` grayscale files become three equal channels
and palette, CMYK or RGBA files become RGB (alpha is dropped, not blended); with
``channels=1`` colour files become their luma (0.299 R + 0.587 G + 0.114 B), so a
1-channel config on colour data trains a grayscale GAN on purpose rather than failing.
16-bit grayscale files are scaled to 8 bits (PIL's conversion would clip them to
white); floating-point files are refused because their range is unknown.
"""

from functools import partial
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from torchvision.transforms import v2
from torchvision.transforms.functional import pil_to_tensor

from gantrain.errors import DatasetError

PIL_MODE_BY_CHANNELS = {1: "L", 3: "RGB"}

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
"""PIL modes of 16-bit grayscale files (``I``: how some formats load them)."""


class BadImageFile(DatasetError):
    """An image file that cannot be used: empty, truncated, corrupt, not an image, or the wrong shape.

    ``reason`` is a clause such as "it is truncated (...)" so that messages can
    be built around it.
    """

    def __init__(self, file: Path | str, reason: str) -> None:
        self.file = Path(file)
        self.reason = reason
        super().__init__(f"The image file '{file}' cannot be used: {reason}. Replace or delete it.")


def open_image(file: Path) -> Image.Image:
    """The fully decoded image in ``file``, or a BadImageFile that says why it cannot be used.

    Pillow reads only the header on open, so the pixels are decoded here
    (``load``): a truncated or corrupt file fails now, naming the file, instead
    of deep inside a transform.  Truncated files are always refused (Pillow's
    ``LOAD_TRUNCATED_IMAGES`` stays off) because their missing rows would
    train as flat grey.
    """
    try:
        with Image.open(file) as image:
            image.load()
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, ... for bad data
        raise BadImageFile(file, _why_unreadable(Path(file), error)) from error
    if image.mode in SIXTEEN_BIT_MODES:
        return image.point(lambda value: value / 256).convert("L")
    if image.mode == "F":
        raise BadImageFile(
            file, "it holds floating-point pixels, whose range is unknown; save it as an 8- or 16-bit image"
        )
    return image


def _why_unreadable(file: Path, error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "it no longer exists (was it moved or deleted after the dataset was listed?)"
    if isinstance(error, PermissionError):
        return "it cannot be read (permission denied)"
    if isinstance(error, UnidentifiedImageError):
        if file.stat().st_size == 0:
            return "it is empty (0 bytes)"
        return "it is not an image Pillow can read (for example a text or HTML file saved under an image name)"
    if "truncated" in str(error).lower():
        return "it is truncated (probably an interrupted download or copy)"
    return f"it is corrupt ({type(error).__name__}: {' '.join(str(error).split())})"


def list_images(folder: Path) -> list[Path]:
    """Every image file below ``folder``, sorted by relative path so the order never depends on the file system."""
    return sorted(
        (
            file
            for file in folder.rglob("*")
            if file.is_file() and has_file_allowed_extension(file.name, IMG_EXTENSIONS)
        ),
        key=lambda file: file.relative_to(folder).as_posix(),
    )


def check_channels_and_size(channels: int, image_size: int) -> None:
    """The ``dataset.channels`` and ``dataset.image_size`` that every image dataset can produce."""
    if channels not in PIL_MODE_BY_CHANNELS:
        raise DatasetError(
            f"dataset.channels={channels} is not supported; use dataset.channels=1 (grayscale) "
            f"or dataset.channels=3 (RGB)."
        )
    if image_size < 1:
        raise DatasetError(
            f"dataset.image_size={image_size} is not a valid size; use a positive number of pixels."
        )


def to_channels(channels: int) -> v2.Lambda:
    """The transform that converts a PIL image to ``channels`` (the first step of every file dataset)."""
    return v2.Lambda(partial(Image.Image.convert, mode=PIL_MODE_BY_CHANNELS[channels]), Image.Image)


def tensor_from_image(image: Image.Image, channels: int) -> torch.Tensor:
    """C x H x W in [-1, 1], converted to ``channels``: what a generator takes."""
    return pil_to_tensor(image.convert(PIL_MODE_BY_CHANNELS[channels])).float() / 127.5 - 1.0


def read_image(file: Path, channels: int) -> torch.Tensor:
    """The image in ``file`` as C x H x W in [-1, 1], or a :class:`BadImageFile` saying why it cannot be used."""
    if not Path(file).is_file():
        raise DatasetError(f"Cannot read {file}: there is no such file. Pass the path of an image file.")
    return tensor_from_image(open_image(file), channels)
