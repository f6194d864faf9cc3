"""Unconditional image datasets: any folder of images, MNIST and CIFAR-10 (CelebA: :mod:`.celeba`).

Each factory is a Hydra ``_target_`` taking the same keywords (``path``,
``image_size``, ``channels``, ``download``) so configs can swap datasets freely.
Every dataset yields ``(image, label)``: a float32 ``channels x image_size x
image_size`` tensor in [-1, 1] (the range a tanh generator produces) and an int
label (0 where the data has none).  Files are read and converted to
``dataset.channels`` by :mod:`gantrain.data.image_files`.

``in_memory`` (folder and celeba): every file is decoded, converted and
resized once, at construction, and kept as a uint8 tensor; items are then
uint8 images and ``batch_transform`` (:mod:`gantrain.data.in_memory`) flips
(celeba's ``flip``) and scales whole batches to [-1, 1].
"""

from pathlib import Path
from urllib.error import URLError

import torch
from torch.utils.data import Dataset
from torchvision.datasets import CIFAR10, MNIST
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from gantrain.data.image_files import check_channels_and_size, list_images, open_image, to_channels
from gantrain.data.in_memory import BatchAugment, auto_off, keeps_in_memory, stack_items
from gantrain.errors import DatasetError

IMAGE_FOLDER_HINT = (
    "Point dataset.path=/path/to/images at a folder of images; it is searched recursively for files ending in "
    f"{', '.join(IMG_EXTENSIONS)} (any case), e.g. images/cat_001.jpg or images/train/a/0001.png, "
    "and no class subfolders are needed."
)


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


def image_folder(
    path: str | None, image_size: int, channels: int = 3, download: bool = False, in_memory: bool | str = False
) -> Dataset:
    """Every image below ``path`` (searched recursively, sorted by relative path).

    ``download`` is accepted only so all dataset configs share one signature;
    a custom folder has nothing to download.
    """
    root = existing_folder(path, IMAGE_FOLDER_HINT)
    files = list_images(root)
    if not files:
        raise DatasetError(f"The image folder '{root}' contains no images. {IMAGE_FOLDER_HINT}")
    in_memory = keeps_in_memory(in_memory, len(files), (channels, image_size, image_size), "images")
    transform = image_transform(image_size, channels, in_memory=in_memory)
    return ImageFiles(files, transform, batch_transform_for(in_memory, channels))


def batch_transform_for(in_memory: bool, channels: int, flip: bool = False) -> BatchAugment | None:
    """What finishes the in-memory images (already at their final size): a flip, the scaling to [-1, 1]."""
    return BatchAugment(None, random_crop=False, flip=flip, channels=channels) if in_memory else None


def mnist(path: str | None, image_size: int, channels: int, download: bool, in_memory: bool | str = False) -> Dataset:
    """The MNIST training split (60,000 handwritten digits, labels 0-9) via torchvision."""
    auto_off(in_memory, "dataset=mnist", "torchvision already keeps its digits in memory")
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
        MNIST, "MNIST", root, download, image_transform(image_size, channels), how_to_fix
    )


def cifar10(
    path: str | None, image_size: int, channels: int = 3, download: bool = False, in_memory: bool | str = False
) -> Dataset:
    """The CIFAR-10 training split (50,000 32x32 photos, labels 0-9) via torchvision."""
    auto_off(in_memory, "dataset=cifar10", "torchvision already keeps its photos in memory")
    root = Path(path or "data/cifar10").expanduser()
    batch_files = [name for name, _ in CIFAR10.train_list + CIFAR10.test_list] + [CIFAR10.meta["filename"]]
    how_to_fix = (
        f"Either download {CIFAR10.url} and extract it into '{root}' so that '{root / CIFAR10.base_folder}' "
        f"holds {', '.join(batch_files)} (or put the unextracted {CIFAR10.filename} into '{root}' and set "
        f"dataset.download=true, which then only extracts it), or point dataset.path=/path/to/root at the "
        f"folder that holds {CIFAR10.base_folder}/."
    )
    return _torchvision_dataset(
        CIFAR10, "CIFAR-10", root, download, image_transform(image_size, channels), how_to_fix
    )


def image_transform(
    image_size: int, channels: int, face_crop: int | None = None, flip: bool = False, in_memory: bool = False
) -> v2.Compose:
    """PIL image -> float32 tensor in [-1, 1], resized and centre-cropped to a square.

    The colour mode is converted on the PIL image first, so grayscale, RGBA or
    palette files all end up with exactly ``channels`` channels.  ``flip``
    mirrors half the images, drawing from torch's global RNG.  ``in_memory``:
    the deterministic part alone, ending in a uint8 tensor (no flip).
    """
    check_channels_and_size(channels, image_size)
    to_mode = to_channels(channels)
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


def existing_folder(path: str | None, hint: str) -> Path:
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
