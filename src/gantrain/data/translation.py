"""Image-to-image translation datasets in the folder layouts of the official CycleGAN and pix2pix releases.

Unaligned (CycleGAN, e.g. horse2zebra)
    ``<path>/trainA``, ``trainB``, ``testA``, ``testB``: images of domain A and
    of domain B, with no correspondence between them.
Aligned (pix2pix, e.g. facades)
    ``<path>/train``, ``test`` (or ``val``): each file shows the A image on its
    left half and the matching B image on its right half (facades: 512x256).

Items are ``{"A": tensor, "B": tensor}``, float32 ``channels x H x W`` in
[-1, 1].  ``preprocess`` picks one of the reference code's modes:
``resize_and_crop`` (resize to ``load_size`` square, crop ``image_size``),
``crop`` (crop ``image_size`` only), ``scale_width`` (width to ``image_size``,
aspect kept), ``scale_width_and_crop`` (width to ``load_size``, aspect kept but
at least ``image_size`` high, crop ``image_size``) and ``none`` (sides rounded
to multiples of 4).  The train split crops at random and flips half the items
horizontally (``flip=True``); the test split crops the centre and never flips.

``name`` names an official dataset (e.g. horse2zebra, facades): when its
folder (``path``, by default ``data/<name>``) is missing,
:func:`gantrain.data.download.ensure_dataset` fetches it into the folder's
parent if ``download`` is set, or explains how to get it.

Every random choice (crop offsets, flips, the unaligned B index) is drawn from
torch's global RNG, so the trainer's seed and its checkpointed RNG state make
runs reproducible and resumable.

``in_memory`` (``preprocess=resize_and_crop`` only) decodes and resizes every
file to ``load_size`` once, at construction, and keeps it as uint8; items are
then uint8 tensors and ``batch_transform`` crops, flips and normalises whole
batches (:mod:`gantrain.data.in_memory`), with the same semantics: aligned
pairs share their crop and flip, unaligned A and B draw their own.

Files are opened with :func:`gantrain.data.image_files.open_image` and converted
to ``dataset.channels`` as described in :mod:`gantrain.data.image_files` (grayscale
to three equal channels, colour to luma).  A file that cannot be used raises
:class:`~gantrain.data.image_files.BadImageFile` when it is loaded: an unreadable
file, an aligned file whose width is odd or not larger than its height (it
cannot hold A and B side by side), or one smaller than the crop of
``preprocess=crop``.
"""

from functools import partial
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from gantrain.data.image_files import (
    BadImageFile,
    check_channels_and_size,
    list_images,
    open_image,
    to_channels,
)
from gantrain.data.in_memory import BatchAugment, auto_off, keeps_in_memory, stack_items
from gantrain.errors import DatasetError

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
SPLITS = ("train", "test")
SIZE_MULTIPLE = 4
"""``preprocess=none`` rounds both sides to a multiple of this, as the reference does, so strided nets fit."""
RESAMPLING = Image.Resampling.BICUBIC
"""The reference code's interpolation for every resize."""
EXTENSIONS_HINT = f"images are files ending in {', '.join(IMG_EXTENSIONS)} (any case), searched recursively"
DOWNLOAD_HINT = "or name an official dataset with dataset.name=... and set dataset.download=true to fetch it"
UNALIGNED_HINT = (
    "An unaligned (CycleGAN) dataset folder holds trainA/ and trainB/ for training and testA/ and testB/ for "
    f"testing, each with images of one domain ({EXTENSIONS_HINT}); point dataset.path=/path/to/dataset at the "
    f"folder that holds them (e.g. datasets/horse2zebra), {DOWNLOAD_HINT}."
)
ALIGNED_HINT = (
    "An aligned (pix2pix) dataset folder holds train/ and test/ (or val/), each with images that show the A image "
    f"on the left half and the matching B image on the right half, e.g. facades/train/1.jpg of 512x256 pixels "
    f"({EXTENSIONS_HINT}); point dataset.path=/path/to/dataset at the folder that holds them, {DOWNLOAD_HINT}."
)


class _TranslationFolders(Dataset):
    """Shared checks, folder lookup and preprocessing of the aligned and unaligned folder datasets."""

    kind: str
    hint: str

    def __init__(
        self,
        path: str | None,
        image_size: int = 256,
        channels: int = 3,
        download: bool = False,
        split: str = "train",
        load_size: int = 286,
        preprocess: str = "resize_and_crop",
        flip: bool = True,
        name: str | None = None,
        in_memory: bool | str = False,
    ) -> None:
        if split not in SPLITS:
            raise DatasetError(f"dataset.split={split!r} is not supported; use dataset.split=train or test.")
        if preprocess not in PREPROCESS_MODES:
            raise DatasetError(
                f"dataset.preprocess={preprocess!r} is not supported; use one of {', '.join(PREPROCESS_MODES)}."
            )
        if in_memory is not False and preprocess != "resize_and_crop":
            mode = getattr(preprocess, "value", preprocess)  # the config's Preprocess enum, or a plain string
            auto_off(in_memory, f"dataset.preprocess={mode}", "only resize_and_crop resizes every image to one "
                     "load_size, which can be done once and cropped a batch at a time")
            in_memory = False
        check_channels_and_size(channels, image_size)
        if preprocess in ("resize_and_crop", "scale_width_and_crop") and load_size < image_size:
            raise DatasetError(
                f"dataset.load_size={load_size} is smaller than dataset.image_size={image_size}, so there is "
                f"nothing to crop from; use a load_size of at least the image size (the reference uses 286 for 256)."
            )
        self.image_size = image_size
        self.split = split
        self.name = name
        self.preprocess = preprocess
        self.root = self._find_root(path, name, download)
        augment = split == "train"
        self.transform = translation_transform(preprocess, image_size, load_size, channels, augment, flip)
        self._index_files()
        self.batch_transform: BatchAugment | None = None
        if keeps_in_memory(in_memory, self._decoded_images(), (channels, load_size, load_size), f"{split} images"):
            self.batch_transform = BatchAugment(
                image_size, random_crop=augment, flip=flip and augment, channels=channels, paired=self.paired
            )
            prepare = preparation_steps(preprocess, image_size, load_size, channels)
            self._keep_in_memory(v2.Compose([*prepare, v2.PILToTensor()]))

    def _index_files(self) -> None:
        """List the split's image files (the layouts differ)."""
        raise NotImplementedError

    def _keep_in_memory(self, prepare: v2.Transform) -> None:
        """Decode every file once with ``prepare`` (PIL image -> uint8 tensor at load_size) and keep it."""
        raise NotImplementedError

    def _decoded_images(self) -> int:
        """How many load_size images the split decodes (a side-by-side pair is two)."""
        raise NotImplementedError

    def _find_root(self, path: str | None, name: str | None, download: bool) -> Path:
        """The dataset folder; a named official dataset whose folder is missing is fetched (or explained) first."""
        if path is None and name is None:
            raise DatasetError(f"No dataset folder was configured (dataset.path is unset). {self.hint}")
        root = Path(path).expanduser() if path is not None else Path("data") / name
        if name is not None and not root.is_dir():
            from gantrain.data.download import ensure_dataset  # imported here: only named downloads need it

            root = ensure_dataset(name, self.kind, root.parent, download)
        if not root.is_dir():
            raise DatasetError(f"The dataset folder '{root}' does not exist or is not a folder. {self.hint}")
        return root

    def _images(self, folder: Path) -> list[Path]:
        """Every image below ``folder``, sorted by relative path so the order never depends on the file system."""
        if not folder.is_dir():
            raise DatasetError(
                f"The folder '{folder}' does not exist (checked for dataset.path={self.root}). "
                f"{self._download_hint()}{self.hint}"
            )
        files = list_images(folder)
        if not files:
            raise DatasetError(
                f"The folder '{folder}' contains no images (dataset.path={self.root}). "
                f"{self._download_hint()}{self.hint}"
            )
        return files

    def _download_hint(self) -> str:
        """For a named official dataset that is only partly there, the command that fetches it whole."""
        if self.name is None:
            return ""
        from gantrain.data.download import download_command, get_entry  # as in _find_root

        command = download_command(get_entry(self.name, self.kind), self.root.parent)
        return f"Delete the incomplete folder and download the dataset again with `{command}`. "

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"Index {index} is outside the dataset of {len(self)} items.")

    def _check_crop_fits(self, file: Path, size: tuple[int, int]) -> None:
        """``preprocess=crop`` takes the crop from the image as stored, so it must be at least that large."""
        if self.preprocess == "crop" and min(size) < self.image_size:
            raise BadImageFile(
                file,
                f"it is {size[0]}x{size[1]} pixels, smaller than the {self.image_size}-pixel crop of "
                f"dataset.preprocess=crop (use dataset.preprocess=resize_and_crop or a smaller dataset.image_size)",
            )


class UnalignedFolders(_TranslationFolders):
    """Unpaired images of two domains (CycleGAN layout); ``len`` is the larger domain's size.

    Item ``i`` takes A image ``i`` (cycling through the smaller domain) and, on
    the train split, a random B image, so A and B never pair up in a fixed way;
    the test split pairs them by index.  Each side gets its own crop and flip.
    """

    kind = "unaligned"
    hint = UNALIGNED_HINT
    paired = False

    def _index_files(self) -> None:
        self.files_a = self._images(self.root / f"{self.split}A")
        self.files_b = self._images(self.root / f"{self.split}B")
        self.images_a: torch.Tensor | None = None
        self.images_b: torch.Tensor | None = None

    def _keep_in_memory(self, prepare: v2.Transform) -> None:
        def decode(files: list[Path], side: str) -> torch.Tensor:
            what = f"{self.split}{side} images"
            return stack_items(len(files), lambda index: prepare(open_image(files[index])), what)

        self.images_a, self.images_b = decode(self.files_a, "A"), decode(self.files_b, "B")

    def _decoded_images(self) -> int:
        return len(self.files_a) + len(self.files_b)

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        self._check_index(index)
        if self.split == "train":
            index_b = int(torch.randint(len(self.files_b), ()))
        else:
            index_b = index % len(self.files_b)
        index_a = index % len(self.files_a)
        if self.images_a is not None:
            return {"A": self.images_a[index_a], "B": self.images_b[index_b]}
        return {"A": self._load(self.files_a[index_a]), "B": self._load(self.files_b[index_b])}

    def _load(self, file: Path) -> torch.Tensor:
        image = open_image(file)
        self._check_crop_fits(file, image.size)
        return self.transform(image)


class AlignedFolders(_TranslationFolders):
    """Paired images stored side by side, A left and B right (pix2pix layout).

    Both halves go through one transform call, so they share the random crop
    offsets and the flip decision and stay pixel-aligned.
    """

    kind = "aligned"
    hint = ALIGNED_HINT
    paired = True

    def _index_files(self) -> None:
        split = self.split
        folder = self.root / split
        if split == "test" and not folder.is_dir() and (self.root / "val").is_dir():
            folder = self.root / "val"
        self.files = self._images(folder)
        self.pairs: torch.Tensor | None = None

    def _keep_in_memory(self, prepare: v2.Transform) -> None:
        """``pairs``: N x 2 x C x H x W, A then B."""

        def load(index: int) -> torch.Tensor:
            return torch.stack([prepare(half) for half in self._halves(self.files[index])])

        self.pairs = stack_items(len(self.files), load, f"{self.split} A|B pairs")

    def _decoded_images(self) -> int:
        return 2 * len(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        self._check_index(index)
        if self.pairs is not None:
            return {"A": self.pairs[index, 0], "B": self.pairs[index, 1]}
        image_a, image_b = self.transform(*self._halves(self.files[index]))
        return {"A": image_a, "B": image_b}

    def _halves(self, file: Path) -> tuple[Image.Image, Image.Image]:
        """The A (left) and B (right) halves of a checked pair file."""
        image = open_image(file)
        width, height = image.size
        self._check_pair_shape(file, width, height)
        half = width // 2
        self._check_crop_fits(file, (half, height))
        return image.crop((0, 0, half, height)), image.crop((half, 0, width, height))

    @staticmethod
    def _check_pair_shape(file: Path, width: int, height: int) -> None:
        """A file must be able to hold A and B side by side; a plain photo would be split into two wrong halves.

        Halves need not be square (the official files are, e.g. facades 512x256),
        so only an odd width or a width no larger than the height is refused.
        """
        layout = (
            "an aligned (pix2pix) file holds the A image on its left half and the matching B image on its right "
            "half, e.g. facades/train/1.jpg of 512x256 pixels"
        )
        if width % 2:
            raise BadImageFile(file, f"it is {width}x{height} pixels, but its width must be even: {layout}")
        if width <= height:
            raise BadImageFile(
                file,
                f"it is {width}x{height} pixels, no wider than high, so it is not an A|B pair: {layout}; "
                f"point dataset.path at such pairs, or use dataset=folder or dataset=unaligned for single images",
            )


def translation_transform(
    preprocess: str, image_size: int, load_size: int, channels: int, augment: bool, flip: bool
) -> v2.Compose:
    """PIL image(s) -> float32 tensor(s) in [-1, 1], preprocessed as in the pix2pix/CycleGAN reference.

    Called with several images at once, v2 draws the random crop and flip once
    and applies them to all, which keeps aligned pairs aligned.  With
    ``augment=False`` crops are centred and nothing is flipped.
    """
    steps = preparation_steps(preprocess, image_size, load_size, channels)
    if preprocess.endswith("crop"):
        steps.append(v2.RandomCrop(image_size) if augment else v2.CenterCrop(image_size))
    if flip and augment:
        steps.append(v2.RandomHorizontalFlip())
    steps += [
        v2.ToImage(),  # an Image, unlike a plain tensor, is transformed even when it is not the first input
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=[0.5] * channels, std=[0.5] * channels),
        v2.ToPureTensor(),
    ]
    return v2.Compose(steps)


def preparation_steps(preprocess: str, image_size: int, load_size: int, channels: int) -> list[v2.Transform]:
    """The deterministic start of :func:`translation_transform`: colour mode and resize, on PIL images."""
    steps: list[v2.Transform] = [
        to_channels(channels)
    ]
    if preprocess == "resize_and_crop":
        steps.append(v2.Resize((load_size, load_size), interpolation=RESAMPLING))
    elif preprocess == "scale_width":
        steps.append(v2.Lambda(partial(_scale_width, width=image_size, min_height=1), Image.Image))
    elif preprocess == "scale_width_and_crop":
        steps.append(v2.Lambda(partial(_scale_width, width=load_size, min_height=image_size), Image.Image))
    elif preprocess == "none":
        steps.append(v2.Lambda(_round_sides_to_multiple, Image.Image))
    return steps


def _scale_width(image: Image.Image, width: int, min_height: int) -> Image.Image:
    """Resize to ``width`` keeping the aspect ratio, but stretch to ``min_height`` so a later crop fits."""
    height = max(round(width * image.height / image.width), min_height)
    return image if image.size == (width, height) else image.resize((width, height), RESAMPLING)


def _round_sides_to_multiple(image: Image.Image) -> Image.Image:
    """Resize each side to its nearest multiple of SIZE_MULTIPLE (at least one multiple)."""
    size = tuple(max(round(side / SIZE_MULTIPLE), 1) * SIZE_MULTIPLE for side in image.size)
    return image if image.size == size else image.resize(size, RESAMPLING)
