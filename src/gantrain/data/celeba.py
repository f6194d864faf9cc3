"""Aligned CelebA faces (Liu et al. 2015), unlabelled (DCGAN) or labelled by attributes (StarGAN).

``path`` holds ``img_align_celeba/`` and, for attribute labels, ``list_attr_celeba.txt``
(both from the official page; Google Drive quotas make an automatic download unreliable,
so there is none).  The split follows StarGAN: the attribute file's lines shuffled with
seed 1234, the first 2,000 are ``test``.
"""

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch
from torchvision.transforms import v2

from gantrain.data.images import ImageFiles, batch_transform_for, existing_folder, image_transform
from gantrain.data.in_memory import BatchAugment, keeps_in_memory
from gantrain.errors import DatasetError

CELEBA_FOLDER = "img_align_celeba"
CELEBA_FACE_CROP = 178
"""Width of the aligned CelebA images; cropping a centred square of it keeps the face."""
CELEBA_URL = "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_ATTRIBUTE_FILE = "list_attr_celeba.txt"
CELEBA_SPLITS = ("train", "test", "all")
CELEBA_TEST_SIZE = 2000
CELEBA_SPLIT_SEED = 1234
"""StarGAN's held-out faces: the first 2,000 lines of the attribute file after a shuffle with this seed."""
CELEBA_HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
"""A face has at most one: StarGAN sets them one-hot."""


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
    in_memory: bool | str = False,
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

    def transforms(count: int) -> tuple[v2.Compose, BatchAugment | None]:
        """The per-image and the batch transform, once ``dataset.in_memory`` is decided for ``count`` faces."""
        keep = keeps_in_memory(in_memory, count, (channels, image_size, image_size), "faces")
        face = image_transform(image_size, channels, face_crop=CELEBA_FACE_CROP, flip=flip, in_memory=keep)
        return face, batch_transform_for(keep, channels, flip)

    hint = (
        f"Download img_align_celeba.zip ('Align&Cropped Images') from the official CelebA page {CELEBA_URL}, "
        f"unzip it so that the folder holds {CELEBA_FOLDER}/000001.jpg ... {CELEBA_FOLDER}/202599.jpg, and set "
        f"dataset.path=/path/to/celeba (the folder holding {CELEBA_FOLDER}/, or {CELEBA_FOLDER}/ itself); "
        f"gantrain does not download CelebA automatically."
    )
    root = existing_folder(path, hint)
    image_dir = root / CELEBA_FOLDER if (root / CELEBA_FOLDER).is_dir() else root
    if not attributes:
        files = sorted(image_dir.glob("*.jpg"))
        if not files:
            raise DatasetError(f"No CelebA images (*.jpg) were found in '{image_dir}'. {hint}")
        files = [files[number] for number in _celeba_split_or_error(len(files), split, image_dir)]
        transform, batch_transform = transforms(len(files))
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
    transform, batch_transform = transforms(len(files))
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
