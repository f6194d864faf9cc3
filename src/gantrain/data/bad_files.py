"""The ``trainer.bad_files`` policy: what a run does when an image file cannot be used.

File-based datasets raise :class:`~gantrain.data.image_files.BadImageFile` for a
corrupt, truncated, empty or non-image file (and for an aligned file of the
wrong shape).  The trainer never lets that escape as a traceback:

1. It wraps its dataset: ``SkipBadFiles(dataset, cfg.trainer.bad_files)``.
2. Its DataLoader uses ``collate_fn=collate_reporting_bad_files``, so each
   batch arrives as ``(batch, skipped)``: the usual collated batch and the
   paths (strings) of the files skipped while making it.
3. With ``skip`` it logs ``len(skipped)`` to TensorBoard as
   ``data/skipped_files`` and warns with the file names; with ``fail`` the
   collate function raises :class:`UnreadableFileError`, a one-paragraph
   DatasetError naming the file, the reason and the remedy, which the command
   line prints without a traceback.

The policy works through markers rather than exceptions because
``__getitem__`` and the collate function run inside DataLoader worker
processes when ``trainer.num_workers > 0``: an error raised there reaches the
main process re-created from the worker's formatted traceback.
UnreadableFileError keeps only its own message when re-created that way, so
the user reads the same paragraph with any number of workers.
"""

from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset, default_collate

from gantrain.data.image_files import BadImageFile
from gantrain.errors import ConfigError, DatasetError

BAD_FILE_POLICIES = ("fail", "skip")
WORKER_ERROR_PREFIX = "Caught "
"""How torch starts the message of an error it re-raises from a DataLoader worker."""


@dataclass(frozen=True)
class Substitute:
    """A good item given in place of items whose files are bad (``skip``); ``skipped_files`` names them."""

    item: Any
    skipped_files: list[str]


@dataclass(frozen=True)
class Unreadable:
    """The marker an item becomes when its file is bad and nothing may replace it.

    ``all_items_bad``: the ``skip`` policy found no good item in the whole
    dataset, so there is nothing to substitute.
    """

    file: str
    reason: str
    all_items_bad: bool = False

    def message(self) -> str:
        if self.all_items_bad:
            return (
                f"No item of the dataset could be read, so trainer.bad_files=skip has nothing to use instead; "
                f"the first bad file is '{self.file}': {self.reason}. Check that dataset.path points at the "
                f"intended folder and that its images are intact."
            )
        return (
            f"The image file '{self.file}' cannot be used: {self.reason}. Fix or delete the file, or set "
            f"trainer.bad_files=skip to train on without it (each skipped file is then named in a warning and "
            f"counted in TensorBoard as data/skipped_files)."
        )


class UnreadableFileError(DatasetError):
    """A bad file stops the run: raised by :func:`collate_reporting_bad_files`.

    Raised in a DataLoader worker, torch re-creates it in the main process
    from the formatted traceback (``Caught UnreadableFileError in DataLoader
    worker process 0. Original Traceback ...``); the constructor then keeps
    the original message, the traceback's last line, so no worker traceback
    reaches the user.
    """

    def __init__(self, message: str) -> None:
        if message.startswith(WORKER_ERROR_PREFIX) and "\n" in message:
            last_line = message.rstrip().rsplit("\n", 1)[-1]  # "gantrain.data.bad_files.UnreadableFileError: ..."
            message = last_line.partition(": ")[2] or message
        super().__init__(message)


class SkipBadFiles(Dataset):
    """``dataset`` with the ``trainer.bad_files`` policy applied to items whose image file is bad.

    ``fail``: such an item becomes an :class:`Unreadable` marker.  ``skip``:
    it is replaced by the next good item (index + 1, + 2, ..., wrapping
    around), returned as a :class:`Substitute` that names the skipped files;
    the replacement is deterministic, so a seeded run stays reproducible.  Good
    items are returned unchanged.  Use :func:`collate_reporting_bad_files` to
    batch the items.
    """

    def __init__(self, dataset: Dataset, policy: str) -> None:
        if policy not in BAD_FILE_POLICIES:
            raise ConfigError(
                f"trainer.bad_files={policy!r} is not supported; use trainer.bad_files=fail (stop at the first bad "
                f"image file) or trainer.bad_files=skip (use the next good item and count the skipped files)."
            )
        self.dataset = dataset
        self.skip = policy == "skip"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        skipped: list[BadImageFile] = []
        for offset in range(len(self) if self.skip else 1):
            try:
                item = self.dataset[(int(index) + offset) % len(self)]
            except BadImageFile as error:
                skipped.append(error)
                continue
            return Substitute(item, [str(error.file) for error in skipped]) if skipped else item
        first = skipped[0]
        return Unreadable(str(first.file), first.reason, all_items_bad=self.skip)


def collate_reporting_bad_files(items: list[Any]) -> tuple[Any, list[str]]:
    """``(batch, skipped)``: the items collated by torch's default_collate and the files skipped for them.

    Raises :class:`UnreadableFileError` (a DatasetError) if any item is an
    :class:`Unreadable` marker.
    """
    skipped: list[str] = []
    good_items = []
    for item in items:
        if isinstance(item, Unreadable):
            raise UnreadableFileError(item.message())
        if isinstance(item, Substitute):
            skipped += item.skipped_files
            item = item.item
        good_items.append(item)
    return default_collate(good_items), skipped
