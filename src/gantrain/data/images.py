"""Image datasets for GAN training.

Each factory is a Hydra ``_target_`` taking the same keywords (``path``,
``image_size``, ``channels``, ``download``) so configs can swap datasets freely.
Every dataset yields ``(image, label)``: a float32 ``channels x image_size x
image_size`` tensor in [-1, 1] (the range a tanh generator produces) and an int
label (0 where the data has none), or for CelebA with ``attributes`` a float
multi-hot vector.  Only CelebA's optional horizontal flip is random (drawn from
torch's global RNG, which the trainer seeds and checkpoints), so a run is
reproducible from the sample order and that RNG.

Colour: ``dataset.channels`` decides, never the files.  Every file is
converted with PIL, here and in the translation and domain datasets: with
``channels=3`` grayscale files become three equal channels and palette, CMYK
or RGBA files become RGB (alpha is dropped, not blended); with ``channels=1``
colour files become their luma (0.299 R + 0.587 G + 0.114 B), so a 1-channel
config on colour data trains a grayscale GAN on purpose rather than failing.
16-bit grayscale files are scaled to 8 bits (PIL's conversion would clip them
to white); floating-point files are refused because their range is unknown.

``in_memory`` (folder and celeba): every file is decoded, converted and
resized once, at construction, and kept as a uint8 tensor; items are then
uint8 images and ``batch_transform`` (:mod:`gantrain.data.in_memory`) flips
(celeba's ``flip``) and scales whole batches to [-1, 1].

Bad files: every file-based dataset opens its images with :func:`open_image`,
which decodes the whole file and raises :class:`BadImageFile` (naming the file
and the reason) for an empty, truncated, corrupt or non-image file.
:class:`gantrain.data.bad_files.SkipBadFiles` turns that into the
``trainer.bad_files`` policy.
"""

import os
import random
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn
from urllib.error import URLError

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, MNIST
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from torchvision.transforms import v2

from gantrain.config import CELEBA_HAIR_COLOURS
from gantrain.data.in_memory import BatchAugment, refuse_in_memory, stack_items
from gantrain.errors import DatasetError

PIL_MODE_BY_CHANNELS = {1: "L", 3: "RGB"}
CELEBA_FOLDER = "img_align_celeba"
CELEBA_FACE_CROP = 178
"""Width of the aligned CelebA images; cropping a centred square of it keeps the face."""
CELEBA_URL = "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_ATTRIBUTE_FILE = "list_attr_celeba.txt"
CELEBA_SPLITS = ("train", "test", "all")
CELEBA_TEST_SIZE = 2000
CELEBA_SPLIT_SEED = 1234
"""StarGAN's held-out faces: the first 2,000 lines of the attribute file after a shuffle with this seed."""
IMAGE_FOLDER_HINT = (
    "Point dataset.path=/path/to/images at a folder of images; it is searched recursively for files ending in "
    f"{', '.join(IMG_EXTENSIONS)} (any case), e.g. images/cat_001.jpg or images/train/a/0001.png, "
    "and no class subfolders are needed."
)


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


class ImageFiles(Dataset):
    """Images from an explicit, ordered file list, each labelled 0.

    The list is fixed at construction so the sample order never depends on the
    file system's listing order.  With a ``batch_transform`` (in memory),
    ``transform`` is the deterministic part that ends in a uint8 tensor: every
    file goes through it once, here, the items are those uint8 images, and
    ``batch_transform`` finishes collated batches.
    """

    def __init__(
        self, files: list[Path], transform: v2.Transform, batch_transform: BatchAugment | None = None
    ) -> None:
        self.files = files
        self.transform = transform
        self.batch_transform = batch_transform
        self.images: torch.Tensor | None = None
        if batch_transform is not None:
            self.images = stack_items(len(files), lambda index: transform(open_image(files[index])), "images")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.images is not None:
            return self.images[index], 0
        return self.transform(open_image(self.files[index])), 0


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


def image_folder(
    path: str | None, image_size: int, channels: int = 3, download: bool = False, in_memory: bool = False
) -> Dataset:
    """Every image below ``path`` (searched recursively, sorted by relative path).

    ``download`` is accepted only so all dataset configs share one signature;
    a custom folder has nothing to download.
    """
    transform = _image_transform(image_size, channels, in_memory=in_memory)
    root = _existing_folder(path, IMAGE_FOLDER_HINT)
    files = list_images(root)
    if not files:
        raise DatasetError(f"The image folder '{root}' contains no images. {IMAGE_FOLDER_HINT}")
    return ImageFiles(files, transform, _batch_transform(in_memory, channels))


def _batch_transform(in_memory: bool, channels: int, flip: bool = False) -> BatchAugment | None:
    """What finishes the in-memory images (already at their final size): a flip, the scaling to [-1, 1]."""
    return BatchAugment(None, random_crop=False, flip=flip, channels=channels) if in_memory else None


def mnist(
    path: str | None, image_size: int = 32, channels: int = 1, download: bool = True, in_memory: bool = False
) -> Dataset:
    """The MNIST training split (60,000 handwritten digits, labels 0-9) via torchvision."""
    refuse_in_memory(in_memory, "dataset=mnist", "torchvision already keeps its digits in memory")
    root = Path(path or "data/mnist").expanduser()
    raw_folder = root / "MNIST" / "raw"
    archives = [archive for archive, _ in MNIST.resources]
    files = [archive.removesuffix(".gz") for archive in archives]
    how_to_fix = (
        f"Either download {', '.join(archives)} from one of {' or '.join(MNIST.mirrors)} and put them, "
        f"gunzipped ({', '.join(files)}), into '{raw_folder}' (the .gz files there also work with "
        f"dataset.download=true, which then only extracts them), or point dataset.path=/path/to/root at "
        f"the folder that holds MNIST/raw/."
    )
    return _torchvision_dataset(
        MNIST, "MNIST", root, download, _image_transform(image_size, channels), how_to_fix
    )


def cifar10(
    path: str | None, image_size: int = 32, channels: int = 3, download: bool = True, in_memory: bool = False
) -> Dataset:
    """The CIFAR-10 training split (50,000 32x32 photos, labels 0-9) via torchvision."""
    refuse_in_memory(in_memory, "dataset=cifar10", "torchvision already keeps its photos in memory")
    root = Path(path or "data/cifar10").expanduser()
    batch_files = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    how_to_fix = (
        f"Either download {CIFAR10.url} and extract it into '{root}' so that '{root / CIFAR10.base_folder}' "
        f"holds {', '.join(batch_files)} (or put the unextracted {CIFAR10.filename} into '{root}' and set "
        f"dataset.download=true, which then only extracts it), or point dataset.path=/path/to/root at the "
        f"folder that holds {CIFAR10.base_folder}/."
    )
    return _torchvision_dataset(
        CIFAR10, "CIFAR-10", root, download, _image_transform(image_size, channels), how_to_fix
    )


class CelebAFaces(ImageFiles):
    """CelebA images with an optional multi-hot attribute label per image.

    ``labels`` is ``len(files) x len(label_names)`` (1.0 where the face has the
    attribute), or None for unlabelled faces, which are labelled 0 like the
    other unconditional datasets.
    """

    def __init__(
        self,
        files: list[Path],
        transform: v2.Transform,
        labels: torch.Tensor | None = None,
        label_names: list[str] | None = None,
        label_groups: list[list[str]] | None = None,
        batch_transform: BatchAugment | None = None,
    ) -> None:
        super().__init__(files, transform, batch_transform)
        self.labels = labels
        self.label_names = list(label_names or [])
        self.label_groups = [list(group) for group in label_groups or []]
        self.multi_label = labels is not None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor | int]:
        image, _ = super().__getitem__(index)
        return image, (0 if self.labels is None else self.labels[index].clone())


def celeba(
    path: str | None,
    image_size: int = 64,
    channels: int = 3,
    download: bool = False,
    attributes: Sequence[str] = (),
    exclusive_groups: Sequence[Sequence[str]] = (tuple(CELEBA_HAIR_COLOURS),),
    split: str = "train",
    flip: bool = False,
    in_memory: bool = False,
) -> CelebAFaces:
    """The aligned CelebA faces (``img_align_celeba/*.jpg``, 178x218), optionally labelled by attributes.

    The centred 178x178 square is cropped before resizing so every face is
    framed the same way (the StarGAN/DCGAN convention).  With ``attributes``
    each face is labelled by those of the 40 attributes in
    ``list_attr_celeba.txt`` and ``label_groups`` holds the ``exclusive_groups``
    (hair colours) restricted to them, which StarGAN sets one-hot.  ``split``
    follows StarGAN: the attribute file's lines shuffled with seed 1234, the
    first 2,000 are ``test`` and the rest ``train`` (``all``: every face).
    Without attributes the same shuffle is applied to the sorted image files,
    which is the same split when the folder holds all 202,599 faces.  ``flip``
    mirrors half the faces at random, except on the test split.  There is no
    automatic download because Google Drive quotas make it unreliable;
    ``download`` is accepted only so all dataset configs share one signature.
    """
    if split not in CELEBA_SPLITS:
        raise DatasetError(f"dataset.split={split!r} is not supported; use dataset.split=train, test or all.")
    flip = flip and split != "test"
    transform = _image_transform(
        image_size, channels, face_crop=CELEBA_FACE_CROP, flip=flip, in_memory=in_memory
    )
    batch_transform = _batch_transform(in_memory, channels, flip)
    hint = (
        f"Download img_align_celeba.zip ('Align&Cropped Images') from the official CelebA page {CELEBA_URL}, "
        f"unzip it so that the folder holds {CELEBA_FOLDER}/000001.jpg ... {CELEBA_FOLDER}/202599.jpg, and set "
        f"dataset.path=/path/to/celeba (the folder holding {CELEBA_FOLDER}/, or {CELEBA_FOLDER}/ itself); "
        f"gantrain does not download CelebA automatically."
    )
    root = _existing_folder(path, hint)
    image_dir = root / CELEBA_FOLDER if (root / CELEBA_FOLDER).is_dir() else root
    if not attributes:
        files = sorted(image_dir.glob("*.jpg"))
        if not files:
            raise DatasetError(f"No CelebA images (*.jpg) were found in '{image_dir}'. {hint}")
        files = [files[number] for number in _celeba_split_or_error(len(files), split, image_dir)]
        return CelebAFaces(files, transform, batch_transform=batch_transform)

    attribute_file = _celeba_attribute_file(root, image_dir)
    file_names, labels = _read_celeba_attributes(attribute_file, attributes, exclusive_groups)
    chosen = _celeba_split_or_error(len(file_names), split, attribute_file)
    files = [image_dir / file_names[number] for number in chosen]
    present = set(os.listdir(image_dir))
    missing = [file for file in files if file.name not in present]
    if missing:
        raise DatasetError(
            f"{len(missing)} of the {len(files)} images that '{attribute_file}' lists for the {split} split are "
            f"missing from '{image_dir}', e.g. '{missing[0]}'; unzip all of img_align_celeba.zip there. {hint}"
        )
    groups = [[name for name in attributes if name in group] for group in exclusive_groups]
    return CelebAFaces(
        files,
        transform,
        labels[chosen],
        label_names=list(attributes),
        label_groups=[group for group in groups if len(group) >= 2],
        batch_transform=batch_transform,
    )


def celeba_split(count: int, split: str) -> list[int]:
    """Line numbers (0-based, among ``count`` data lines) of a CelebA split, as StarGAN's loader picks them.

    The shuffle depends only on the number of lines, so shuffling line numbers
    gives the reference's order.  (The reference code's ``(i+1) < 2000`` test
    keeps 1,999 test faces; the paper's 2,000 are kept here.)
    """
    numbers = list(range(count))
    if split == "all":
        return numbers
    random.Random(CELEBA_SPLIT_SEED).shuffle(numbers)
    return numbers[:CELEBA_TEST_SIZE] if split == "test" else numbers[CELEBA_TEST_SIZE:]


def _celeba_split_or_error(count: int, split: str, source: Path) -> list[int]:
    """celeba_split, or a DatasetError if the split is empty (the train split of a small folder)."""
    numbers = celeba_split(count, split)
    if not numbers:
        raise DatasetError(
            f"The CelebA {split} split of '{source}' is empty: StarGAN's test split takes the first "
            f"{CELEBA_TEST_SIZE} of the {count} shuffled faces and leaves none for training; set "
            f"dataset.split=all to use every face."
        )
    return numbers


def _celeba_attribute_file(root: Path, image_dir: Path) -> Path:
    """``list_attr_celeba.txt`` beside the images folder (or inside ``Anno/``, as the official download has it)."""
    folders = dict.fromkeys([root, image_dir.parent])
    candidates = [
        folder / name
        for folder in folders
        for name in (CELEBA_ATTRIBUTE_FILE, f"Anno/{CELEBA_ATTRIBUTE_FILE}")
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"CelebA attribute labels (dataset.attributes) need {CELEBA_ATTRIBUTE_FILE}, which was not found at "
        f"{' or '.join(str(candidate) for candidate in candidates)}. Download Anno/{CELEBA_ATTRIBUTE_FILE} from "
        f"the official CelebA page {CELEBA_URL} and put it beside {CELEBA_FOLDER}/ (dataset.path=/path/to/celeba "
        f"holding both), or set dataset.attributes=[] for unlabelled faces."
    )


def _read_celeba_attributes(
    attribute_file: Path, attributes: Sequence[str], exclusive_groups: Sequence[Sequence[str]]
) -> tuple[list[str], torch.Tensor]:
    """The file name of every data line, in file order, and its ``attributes`` as a float multi-hot matrix.

    Line 1 is the image count and line 2 the 40 names; each further line is a
    file name and one ``1`` or ``-1`` per attribute, separated by any number of
    spaces.  Only the chosen columns are kept: the whole table as Python
    strings would take about 400 MB.
    """
    lines = attribute_file.read_text().splitlines()
    names = lines[1].split() if len(lines) > 1 else []
    _check_celeba_names(attributes, names, "dataset.attributes", attribute_file)
    for group in exclusive_groups:
        _check_celeba_names(group, names, "dataset.exclusive_groups", attribute_file)
    columns = [1 + names.index(name) for name in attributes]
    file_names, labels = [], []
    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 1 + len(names):
            _bad_attribute_file(
                attribute_file, f"the line of {fields[0]} does not have one value per attribute"
            )
        file_names.append(fields[0])
        labels.append([fields[column] == "1" for column in columns])
    if not file_names:
        _bad_attribute_file(attribute_file, "it has no data lines")
    return file_names, torch.tensor(labels, dtype=torch.float32).reshape(len(file_names), len(columns))


def _bad_attribute_file(attribute_file: Path, problem: str) -> NoReturn:
    raise DatasetError(
        f"'{attribute_file}' is not a CelebA attribute file: {problem}. It should hold the image count on line 1, "
        f"the 40 attribute names on line 2, then one line per image such as '000001.jpg -1 1 ... 1'; download "
        f"Anno/{CELEBA_ATTRIBUTE_FILE} again from the official CelebA page {CELEBA_URL}."
    )


def _check_celeba_names(chosen: Sequence[str], valid: list[str], setting: str, attribute_file: Path) -> None:
    """A DatasetError listing the valid attribute names if ``chosen`` has an unknown or repeated one."""
    if not valid:
        _bad_attribute_file(attribute_file, "line 2 names no attributes")
    unknown = [name for name in chosen if name not in valid]
    repeated = sorted({name for name in chosen if list(chosen).count(name) > 1})
    if unknown:
        problem = f"names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'} not"
    elif repeated:
        problem = f"names {', '.join(repeated)} more than once; each must be one"
    else:
        return
    raise DatasetError(
        f"{setting} {problem} of the CelebA attributes in '{attribute_file}'; choose among "
        f"{', '.join(valid)}."
    )


def _image_transform(
    image_size: int, channels: int, face_crop: int | None = None, flip: bool = False, in_memory: bool = False
) -> v2.Compose:
    """PIL image -> float32 tensor in [-1, 1], resized and centre-cropped to a square.

    The colour mode is converted on the PIL image first, so grayscale, RGBA or
    palette files all end up with exactly ``channels`` channels.  ``flip``
    mirrors half the images, drawing from torch's global RNG.  ``in_memory``:
    the deterministic part alone, ending in a uint8 tensor (no flip).
    """
    if channels not in PIL_MODE_BY_CHANNELS:
        raise DatasetError(
            f"dataset.channels={channels} is not supported; use dataset.channels=1 (grayscale) "
            f"or dataset.channels=3 (RGB)."
        )
    if image_size < 1:
        raise DatasetError(
            f"dataset.image_size={image_size} is not a valid size; use a positive number of pixels."
        )
    to_mode = v2.Lambda(partial(Image.Image.convert, mode=PIL_MODE_BY_CHANNELS[channels]), Image.Image)
    crop_and_resize = (
        [v2.CenterCrop(face_crop), v2.Resize(image_size)]
        if face_crop
        else [v2.Resize(image_size), v2.CenterCrop(image_size)]
    )
    if in_memory:
        return v2.Compose([to_mode, *crop_and_resize, v2.PILToTensor()])
    return v2.Compose(
        [
            to_mode,
            *([v2.RandomHorizontalFlip()] if flip else []),
            *crop_and_resize,
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.5] * channels, std=[0.5] * channels),
        ]
    )


def _existing_folder(path: str | None, hint: str) -> Path:
    """``path`` as a Path, or a DatasetError (with ``hint``) if it is unset or not a folder."""
    if path is None:
        raise DatasetError(f"No dataset folder was configured (dataset.path is unset). {hint}")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DatasetError(f"The dataset folder '{folder}' does not exist. {hint}")
    if not folder.is_dir():
        raise DatasetError(f"The dataset path '{folder}' is not a folder. {hint}")
    return folder


def _torchvision_dataset(
    dataset_class: type[MNIST] | type[CIFAR10],
    name: str,
    root: Path,
    download: bool,
    transform: v2.Compose,
    how_to_fix: str,
) -> Dataset:
    """Load a torchvision training split, turning its missing-file and network errors into a DatasetError."""
    try:
        return dataset_class(str(root), train=True, transform=transform, download=download)
    except (URLError, OSError, RuntimeError) as error:
        if download:
            problem = f"downloading it failed (are you offline?): {' '.join(str(error).split())}"
        else:
            problem = "its files are missing or incomplete and dataset.download=false"
        raise DatasetError(f"{name} could not be loaded from '{root}': {problem}. {how_to_fix}") from error
