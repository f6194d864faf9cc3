"""Image datasets for GAN training.

Each factory is a Hydra ``_target_`` taking the same keywords (``path``,
``image_size``, ``channels``, ``download``) so configs can swap datasets freely.
Every dataset yields ``(image, label)``: a float32 ``channels x image_size x
image_size`` tensor in [-1, 1] (the range a tanh generator produces) and an int
label (0 where the data has none).  There is no random augmentation, so a run
is reproducible from the sample order alone.
"""

from functools import partial
from pathlib import Path
from urllib.error import URLError

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, MNIST
from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension
from torchvision.transforms import v2

from gantrain.errors import DatasetError

PIL_MODE_BY_CHANNELS = {1: "L", 3: "RGB"}
CELEBA_FOLDER = "img_align_celeba"
CELEBA_FACE_CROP = 178
"""Width of the aligned CelebA images; cropping a centred square of it keeps the face."""
CELEBA_URL = "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
IMAGE_FOLDER_HINT = (
    "Point dataset.path=/path/to/images at a folder of images; it is searched recursively for files ending in "
    f"{', '.join(IMG_EXTENSIONS)} (any case), e.g. images/cat_001.jpg or images/train/a/0001.png, "
    "and no class subfolders are needed."
)


class ImageFiles(Dataset):
    """Images from an explicit, ordered file list, each labelled 0.

    The list is fixed at construction so the sample order never depends on the
    file system's listing order.
    """

    def __init__(self, files: list[Path], transform: v2.Transform) -> None:
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[index]) as image:
            return self.transform(image), 0


def list_images(folder: Path) -> list[Path]:
    """Every image file below ``folder``, sorted by relative path so the order never depends on the file system."""
    return sorted(
        (file for file in folder.rglob("*") if file.is_file() and has_file_allowed_extension(file.name, IMG_EXTENSIONS)),
        key=lambda file: file.relative_to(folder).as_posix(),
    )


def image_folder(path: str | None, image_size: int, channels: int = 3, download: bool = False) -> Dataset:
    """Every image below ``path`` (searched recursively, sorted by relative path).

    ``download`` is accepted only so all dataset configs share one signature;
    a custom folder has nothing to download.
    """
    transform = _image_transform(image_size, channels)
    root = _existing_folder(path, IMAGE_FOLDER_HINT)
    files = list_images(root)
    if not files:
        raise DatasetError(f"The image folder '{root}' contains no images. {IMAGE_FOLDER_HINT}")
    return ImageFiles(files, transform)


def mnist(path: str | None, image_size: int = 32, channels: int = 1, download: bool = True) -> Dataset:
    """The MNIST training split (60,000 handwritten digits, labels 0-9) via torchvision."""
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
    return _torchvision_dataset(MNIST, "MNIST", root, download, _image_transform(image_size, channels), how_to_fix)


def cifar10(path: str | None, image_size: int = 32, channels: int = 3, download: bool = True) -> Dataset:
    """The CIFAR-10 training split (50,000 32x32 photos, labels 0-9) via torchvision."""
    root = Path(path or "data/cifar10").expanduser()
    batch_files = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    how_to_fix = (
        f"Either download {CIFAR10.url} and extract it into '{root}' so that '{root / CIFAR10.base_folder}' "
        f"holds {', '.join(batch_files)} (or put the unextracted {CIFAR10.filename} into '{root}' and set "
        f"dataset.download=true, which then only extracts it), or point dataset.path=/path/to/root at the "
        f"folder that holds {CIFAR10.base_folder}/."
    )
    return _torchvision_dataset(CIFAR10, "CIFAR-10", root, download, _image_transform(image_size, channels), how_to_fix)


def celeba(path: str | None, image_size: int = 64, channels: int = 3, download: bool = False) -> Dataset:
    """The aligned CelebA faces (``img_align_celeba/*.jpg``, 178x218), labels 0.

    The centred 178x178 square is cropped before resizing so every face is
    framed the same way (the StarGAN/DCGAN convention).  There is no automatic
    download because Google Drive quotas make it unreliable; ``download`` is
    accepted only so all dataset configs share one signature.
    """
    transform = _image_transform(image_size, channels, face_crop=CELEBA_FACE_CROP)
    hint = (
        f"Download img_align_celeba.zip ('Align&Cropped Images') from the official CelebA page {CELEBA_URL}, "
        f"unzip it so that the folder holds {CELEBA_FOLDER}/000001.jpg ... {CELEBA_FOLDER}/202599.jpg, and set "
        f"dataset.path=/path/to/celeba (the folder holding {CELEBA_FOLDER}/, or {CELEBA_FOLDER}/ itself); "
        f"gantrain does not download CelebA automatically."
    )
    root = _existing_folder(path, hint)
    image_dir = root / CELEBA_FOLDER if (root / CELEBA_FOLDER).is_dir() else root
    files = sorted(image_dir.glob("*.jpg"))
    if not files:
        raise DatasetError(f"No CelebA images (*.jpg) were found in '{image_dir}'. {hint}")
    return ImageFiles(files, transform)


def _image_transform(image_size: int, channels: int, face_crop: int | None = None) -> v2.Compose:
    """PIL image -> float32 tensor in [-1, 1], resized and centre-cropped to a square.

    The colour mode is converted on the PIL image first, so grayscale, RGBA or
    palette files all end up with exactly ``channels`` channels.
    """
    if channels not in PIL_MODE_BY_CHANNELS:
        raise DatasetError(
            f"dataset.channels={channels} is not supported; use dataset.channels=1 (grayscale) "
            f"or dataset.channels=3 (RGB)."
        )
    if image_size < 1:
        raise DatasetError(f"dataset.image_size={image_size} is not a valid size; use a positive number of pixels.")
    to_mode = v2.Lambda(partial(Image.Image.convert, mode=PIL_MODE_BY_CHANNELS[channels]), Image.Image)
    crop_and_resize = (
        [v2.CenterCrop(face_crop), v2.Resize(image_size)]
        if face_crop
        else [v2.Resize(image_size), v2.CenterCrop(image_size)]
    )
    return v2.Compose(
        [
            to_mode,
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
