"""Multi-domain image datasets: one folder per domain (AFHQ, CelebA-HQ, RaFD), and reference pairs for StarGAN v2.

DomainFolders reads ``<path>/<split>/<domain>/**/<image>``; the domains are the
sorted subfolder names and an item's label is its domain's index.  The train
split augments: with probability ``random_crop_probability`` a random crop of
80-100% of the area (aspect 0.9-1.1) instead of the whole image, as StarGAN v2
does, then a horizontal flip of half the images (``flip``).  The test split
never augments.  Every random choice is drawn from torch's global RNG, so the
trainer's seed and its checkpointed RNG state make runs reproducible and
resumable.  Files are opened with :func:`gantrain.data.image_files.open_image`
(a bad file raises :class:`~gantrain.data.image_files.BadImageFile`) and converted
to ``dataset.channels`` as described in :mod:`gantrain.data.image_files`.

WithReferences adds to each item a target domain and two reference images of
it, which StarGAN v2's reference-guided steps translate towards.
"""

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from gantrain.data.image_files import check_channels_and_size, list_images, open_image, to_channels
from gantrain.data.in_memory import auto_off
from gantrain.errors import DatasetError

SPLITS = ("train", "test")
CROP_SCALE = (0.8, 1.0)
CROP_RATIO = (0.9, 1.1)
DOMAINS_HINT = (
    "A multi-domain dataset folder holds train/ and test/ (or val/), each with one subfolder of images per domain, "
    "e.g. afhq/train/cat/, afhq/train/dog/, afhq/train/wild/, afhq/test/cat/ ... (images are files ending in "
    f"{', '.join(IMG_EXTENSIONS)}, any case, searched recursively); point dataset.path=/path/to/afhq at the "
    "folder that holds train/. AFHQ and CelebA-HQ come from the StarGAN v2 authors' script "
    "(bash download.sh afhq-dataset or celeba-hq-dataset, github.com/clovaai/stargan-v2); gantrain does not "
    "download them."
)


class DomainFolders(Dataset):
    """Images labelled by the folder (domain) they are in.

    With ``balanced`` every domain appears equally often per epoch: item ``i``
    is from domain ``i % D`` (smaller domains are repeated), so ``len`` is
    ``D`` times the largest domain and the first items of the test split cycle
    through the domains, which makes tidy sample grids.  Otherwise the items
    are all images, domain by domain, each once.  ``download`` is accepted
    only so all dataset configs share one signature.
    """

    multi_label = False

    def __init__(
        self,
        path: str | None,
        image_size: int = 256,
        channels: int = 3,
        download: bool = False,
        split: str = "train",
        flip: bool = True,
        random_crop_probability: float = 0.0,
        balanced: bool = True,
        in_memory: bool | str = False,
    ) -> None:
        auto_off(
            in_memory,
            "the domain folders (dataset=domains, afhq, celeba_hq, rafd)",
            "their random resized crop, StarGAN v2's augmentation, is drawn per image",
        )
        if split not in SPLITS:
            raise DatasetError(f"dataset.split={split!r} is not supported; use dataset.split=train or test.")
        check_channels_and_size(channels, image_size)
        if not 0.0 <= random_crop_probability <= 1.0:
            raise DatasetError(
                f"dataset.random_crop_probability={random_crop_probability} is not a probability; use a value "
                f"from 0 (never crop) to 1 (always crop); StarGAN v2 uses 0.5."
            )
        self.root = self._find_root(path)
        self.split = split
        self.balanced = balanced
        folder = self._split_folder(split)
        self.label_names = self._domain_names(folder)
        if split != "train" and (self.root / "train").is_dir():
            self._check_same_domains_as_train(folder)
        self.label_groups = []
        self.files = [self._images(folder / domain) for domain in self.label_names]
        augment = split == "train"
        self.transform = domain_transform(
            image_size, channels, random_crop_probability if augment else 0.0, flip and augment
        )

    def __len__(self) -> int:
        if self.balanced:
            return len(self.files) * max(len(files) for files in self.files)
        return sum(len(files) for files in self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"Index {index} is outside the dataset of {len(self)} items.")
        domain, number = self._locate(index)
        return self.transform(open_image(self.files[domain][number])), domain

    def domain_indices(self) -> list[list[int]]:
        """For each domain, the item indices labelled with it (for drawing reference images of a domain)."""
        count = len(self.files)
        if self.balanced:
            return [list(range(domain, len(self), count)) for domain in range(count)]
        starts = np.cumsum([0] + [len(files) for files in self.files])
        return [list(range(starts[domain], starts[domain + 1])) for domain in range(count)]

    def _locate(self, index: int) -> tuple[int, int]:
        """(domain, image number within the domain) of item ``index``."""
        if self.balanced:
            domain = index % len(self.files)
            return domain, (index // len(self.files)) % len(self.files[domain])
        for domain, files in enumerate(self.files):
            if index < len(files):
                return domain, index
            index -= len(files)
        raise IndexError(index)

    def _find_root(self, path: str | None) -> Path:
        if path is None:
            raise DatasetError(f"No dataset folder was configured (dataset.path is unset). {DOMAINS_HINT}")
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DatasetError(
                f"The dataset folder '{root}' does not exist or is not a folder. {DOMAINS_HINT}"
            )
        return root

    def _split_folder(self, split: str) -> Path:
        """``<root>/<split>``; the test split falls back to ``val`` (CelebA-HQ's name for it)."""
        folder = self.root / split
        if split == "test" and not folder.is_dir() and (self.root / "val").is_dir():
            folder = self.root / "val"
        if not folder.is_dir():
            tried = f"'{folder}' or '{self.root / 'val'}'" if split == "test" else f"'{folder}'"
            raise DatasetError(
                f"The {split} split folder {tried} does not exist (dataset.path={self.root}). {DOMAINS_HINT}"
            )
        return folder

    def _domain_names(self, folder: Path) -> list[str]:
        names = sorted(
            entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")
        )
        if len(names) < 2:
            found = f"only {names[0]}/" if names else "none"
            raise DatasetError(
                f"The folder '{folder}' needs at least two domain subfolders to translate between, but has "
                f"{found} (dataset.path={self.root}). {DOMAINS_HINT}"
            )
        return names

    def _check_same_domains_as_train(self, folder: Path) -> None:
        """Labels are indices into the sorted names, so a split with other domains would mislabel images."""
        train_names = sorted(
            entry.name
            for entry in (self.root / "train").iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )
        if train_names != self.label_names:
            raise DatasetError(
                f"The domains of '{folder}' ({', '.join(self.label_names)}) differ from those of "
                f"'{self.root / 'train'}' ({', '.join(train_names)}), so the label numbers would not match; give "
                f"every split the same domain subfolders (dataset.path={self.root}). {DOMAINS_HINT}"
            )

    def _images(self, folder: Path) -> list[Path]:
        files = list_images(folder)
        if not files:
            raise DatasetError(
                f"The domain folder '{folder}' contains no images (dataset.path={self.root}). {DOMAINS_HINT}"
            )
        return files


def domain_transform(
    image_size: int, channels: int, random_crop_probability: float, flip: bool
) -> v2.Compose:
    """PIL image -> square float32 tensor in [-1, 1]: a random crop or the whole image, resized, maybe flipped.

    Both branches end at ``image_size x image_size`` (non-square images are
    stretched, as StarGAN v2 does).  A probability of 0 or 1 draws nothing for
    the choice, so the test split's transform consumes no random numbers.
    """
    resize = v2.Resize((image_size, image_size))
    crop = v2.RandomResizedCrop(image_size, scale=CROP_SCALE, ratio=CROP_RATIO)
    if random_crop_probability >= 1.0:
        crop_or_resize = crop
    elif random_crop_probability > 0.0:
        crop_or_resize = v2.RandomChoice(
            [crop, resize], p=[random_crop_probability, 1 - random_crop_probability]
        )
    else:
        crop_or_resize = resize
    return v2.Compose(
        [
            to_channels(channels),
            crop_or_resize,
            *([v2.RandomHorizontalFlip()] if flip else []),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.5] * channels, std=[0.5] * channels),
        ]
    )


class WithReferences(Dataset):
    """Items of a single-label dataset with a random target domain and two reference images of it.

    Items are dicts: ``image`` and ``label`` (the wrapped item), ``reference``
    and ``reference_2`` (two images drawn independently and uniformly from the
    items of domain ``reference_label``, itself uniform over the domains that
    have items).  StarGAN v2's reference-guided steps take style codes from
    them.  With ``seed`` None the draws come from torch's global RNG, which the
    trainer seeds and checkpoints.  With a ``seed`` (a fixed sample batch)
    item ``i`` is computed under a forked CPU RNG seeded from ``(seed, i)``:
    it is the same every time, augmentations included, and the global RNG is
    left exactly as it was.  An in-memory dataset's ``batch_transform`` is
    passed on: it turns every uint8 image of the batch into [-1, 1].
    """

    def __init__(self, dataset: Dataset, seed: int | None = None) -> None:
        if getattr(dataset, "multi_label", True):
            raise DatasetError(
                "Reference images need a dataset with exactly one domain per image (multi_label false, e.g. "
                "dataset=afhq, celeba_hq, domains or shapes_domains), not attribute labels such as "
                "dataset=celeba or shapes_attributes; pick a domain dataset for model=stargan_v2."
            )
        self.dataset = dataset
        self.seed = seed
        self.batch_transform = getattr(dataset, "batch_transform", None)
        self.label_names = list(dataset.label_names)
        self.label_groups = list(dataset.label_groups)
        self.multi_label = False
        indices_by_domain = dataset.domain_indices()
        self.domains_with_items = [domain for domain, indices in enumerate(indices_by_domain) if indices]
        self.indices_by_domain = [indices_by_domain[domain] for domain in self.domains_with_items]
        if not self.domains_with_items:
            raise DatasetError("The dataset has no items to draw reference images from; check dataset.path.")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.seed is None:
            return self._item(index)
        seed_sequence = np.random.SeedSequence([self.seed, int(index)])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(seed_sequence.generate_state(1)[0]))
            return self._item(index)

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        image, label = self.dataset[index]
        choice = int(torch.randint(len(self.domains_with_items), ()))
        candidates = self.indices_by_domain[choice]
        first, second = (candidates[int(number)] for number in torch.randint(len(candidates), (2,)))
        return {
            "image": image,
            "label": torch.as_tensor(label, dtype=torch.int64),
            "reference": self.dataset[first][0],
            "reference_2": self.dataset[second][0],
            "reference_label": torch.tensor(self.domains_with_items[choice], dtype=torch.int64),
        }
