"""The official CycleGAN and pix2pix datasets: where they live and how to fetch them safely.

The archives are hosted on one university server that has had outages and
publishes no checksums, so everything that can be checked is checked (the
announced size, the archive's own integrity, an optional sha256), an
interrupted download resumes where it stopped, and an archive placed by hand
in ``<root>/.downloads/`` is used without any network.  Extraction goes to a
temporary folder that is moved into place only once complete, so a dataset
folder is either whole or absent.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from gantrain.errors import DatasetError

OFFICIAL_HOST = "efrosgans.eecs.berkeley.edu"
OFFICIAL_BASE_URL = f"http://{OFFICIAL_HOST}"
BASE_URL_ENV = "GANTRAIN_DATASETS_URL"
DATA_ROOT_ENV = "GANTRAIN_DATA"
"""Where datasets live (default ``data/`` in the working directory): training, gantrain-data and the configs."""
"""Environment variable naming a mirror that replaces ``OFFICIAL_BASE_URL``."""
DOWNLOADS_FOLDER = ".downloads"
TIMEOUT_S = 60
"""Seconds without progress before a connection counts as failed."""
CHUNK_BYTES = 1 << 20

UNALIGNED = "unaligned"
ALIGNED = "aligned"
CYCLEGAN_SUBFOLDERS = ("trainA", "trainB", "testA", "testB")


@dataclass(frozen=True)
class DatasetEntry:
    """One downloadable archive.

    ``name`` is also the top folder inside the archive; ``folder`` is where it
    ends up under the data root, which differs from ``name`` only where both
    collections publish a dataset of that name.
    """

    name: str
    kind: str
    collection: str
    archive: str
    folder: str
    subfolders: tuple[str, ...]
    option: str  # its name here and as a config: dataset=<option>, gantrain-data download <option>
    sha256: str | None = None  # a published digest; none of the official archives has one today

    @property
    def check(self) -> str:
        """How a download is verified: against a published digest, else by reading the whole archive and
        checking the folder layout it extracts to."""
        return "sha256" if self.sha256 else "integrity + layout"

    @property
    def key(self) -> str:
        return f"{self.collection}/{self.name}"

    @property
    def url(self) -> str:
        return self.url_at(OFFICIAL_BASE_URL)

    def url_at(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.collection}/datasets/{self.archive}"


def _cyclegan(name: str) -> DatasetEntry:
    # both collections publish facades and maps: the plain names are the pix2pix (paired) ones, as in configs/dataset/
    option = f"{name}_unaligned" if name in PUBLISHED_BY_BOTH else name
    return DatasetEntry(name, UNALIGNED, "cyclegan", f"{name}.zip", name, CYCLEGAN_SUBFOLDERS, option)


def _pix2pix(name: str, subfolders: tuple[str, ...], folder: str | None = None) -> DatasetEntry:
    return DatasetEntry(name, ALIGNED, "pix2pix", f"{name}.tar.gz", folder or name, subfolders, name)


PUBLISHED_BY_BOTH = ("facades", "maps")


DATASETS: dict[str, DatasetEntry] = {
    entry.key: entry
    for entry in (
        *map(
            _cyclegan,
            (
                "apple2orange",
                "summer2winter_yosemite",
                "horse2zebra",
                "monet2photo",
                "cezanne2photo",
                "ukiyoe2photo",
                "vangogh2photo",
                "maps",
                "facades",
                "iphone2dslr_flower",
                "ae_photos",
                "mini",
            ),
        ),
        # The pix2pix facades and maps would clash with the CycleGAN folders of the same name.
        _pix2pix("facades", ("train", "val", "test"), folder="facades_pix2pix"),
        _pix2pix("maps", ("train", "val"), folder="maps_pix2pix"),
        _pix2pix("edges2shoes", ("train", "val")),
        _pix2pix("edges2handbags", ("train", "val")),
        _pix2pix("night2day", ("train", "val", "test")),
        _pix2pix("mini_pix2pix", ("train", "val", "test")),
    )
}


def get_entry(name: str, kind: str | None = None) -> DatasetEntry:
    """The entry named as ``dataset=`` names it (``facades``: the pix2pix pairs, ``facades_unaligned``: the
    CycleGAN copy), or by key (``cyclegan/facades``), or by the archive's name of the given ``kind``."""
    candidates = [
        entry for entry in DATASETS.values()
        if kind in (None, entry.kind) and (name in (entry.option, entry.key) or (kind and name == entry.name))
    ]
    if not candidates:
        known = sorted(entry.option for entry in DATASETS.values() if kind in (None, entry.kind))
        wanted = f"{kind} dataset" if kind else "dataset"
        raise DatasetError(
            f"There is no official {wanted} called '{name}'. Choose one of {', '.join(known)} "
            "(`gantrain-data list` shows them all with their kinds)."
        )
    return candidates[0]


def archive_size(entry: DatasetEntry, base_url: str | None = None, timeout: float = 5.0) -> int | None:
    """The archive's size in bytes, as the server announces it (None offline or when it does not say)."""
    try:
        with urlopen(Request(archive_url(entry, base_url), method="HEAD"), timeout=timeout) as response:
            length = response.headers.get("Content-Length")
    except (URLError, http.client.HTTPException, TimeoutError, ConnectionError, OSError):
        return None
    return int(length) if length is not None else None


def archive_url(entry: DatasetEntry, base_url: str | None = None) -> str:
    """Where the archive is fetched from: ``base_url``, else the mirror in the environment, else the official host."""
    return entry.url_at(base_url or os.environ.get(BASE_URL_ENV) or OFFICIAL_BASE_URL)


def is_present(entry: DatasetEntry, root: str | Path) -> bool:
    return not _missing_subfolders(Path(root) / entry.folder, entry)


def download(
    entry: DatasetEntry,
    root: str | Path,
    base_url: str | None = None,
    progress: bool = True,
    keep_archive: bool = False,
) -> Path:
    """``root/<entry.folder>``, downloaded and extracted first unless it is already there."""
    root = Path(root)
    target = root / entry.folder
    missing = _missing_subfolders(target, entry)
    if not missing:
        return target
    if target.exists():
        raise DatasetError(
            f"'{target}' exists but has no {', '.join(missing)} subfolder, so it is not the complete "
            f"{entry.kind} dataset '{entry.name}'. Move or delete that folder and run again to download "
            f"a fresh copy, or complete it by hand so that {_layout(target, entry)} exist."
        )
    url = archive_url(entry, base_url)
    archive = root / DOWNLOADS_FOLDER / entry.archive
    if not archive.exists():
        _fetch(url, archive, progress, entry, target)
    _verify(archive, entry, url)
    _extract(archive, entry, root, target)
    if not keep_archive:
        archive.unlink()
        with contextlib.suppress(OSError):
            archive.parent.rmdir()
    return target


_download = download
"""``ensure_dataset``'s ``download`` flag shadows the function of that name."""


def ensure_dataset(name: str, kind: str, root: str | Path, download: bool) -> Path:
    """The dataset folder for a loader, downloading it only where the caller allows."""
    entry = get_entry(name, kind)
    root = Path(root)
    target = root / entry.folder
    if is_present(entry, root):
        return target
    if download:
        return _download(entry, root)
    raise DatasetError(
        f"The {entry.kind} dataset '{entry.name}' is not in '{target}'. Download it with "
        f"`{download_command(entry, root)}` (or allow downloading in the dataset config), or put the "
        f"extracted dataset there so that {_layout(target, entry)} exist, or put its archive from "
        f"{entry.url} at '{root / DOWNLOADS_FOLDER / entry.archive}' and run that command to extract it."
    )


def download_command(entry: DatasetEntry, root: Path) -> str:
    return f"gantrain-data download {entry.option} --root {root}"


def _missing_subfolders(folder: Path, entry: DatasetEntry) -> list[str]:
    return [name for name in entry.subfolders if not (folder / name).is_dir()]


def _layout(folder: Path, entry: DatasetEntry) -> str:
    return ", ".join(f"'{folder / name}'" for name in entry.subfolders)


def _fetch(url: str, archive: Path, progress: bool, entry: DatasetEntry, target: Path) -> None:
    """Download into ``<archive>.part`` (resuming it where possible), then rename it to ``archive``."""
    part = archive.with_name(archive.name + ".part")
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        _stream(url, part, progress)
    except (URLError, http.client.HTTPException, TimeoutError, ConnectionError) as error:
        raise DatasetError(
            f"Could not download {url}: {_describe(error)}. The dataset server ({OFFICIAL_HOST}) has had "
            "outages, so try again later (anything received so far is kept and the download resumes), use a mirror "
            f"with --base-url or {BASE_URL_ENV}, or fetch the archive another way and put it at '{archive}' "
            f"(it is verified and extracted without network), or put the extracted dataset at '{target}' so "
            f"that {_layout(target, entry)} exist."
        ) from None
    except OSError as error:
        raise DatasetError(
            f"Could not save the download to '{part}': {error}. Free some disk space or use another data folder."
        ) from None
    part.replace(archive)


def _stream(url: str, part: Path, progress: bool) -> None:
    """Append to ``part`` from where it stops when the server honours a Range request, else start over."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = urlopen(Request(url, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as error:
        if error.code != 416 or not offset:
            raise
        # The server has nothing past the offset: the part file cannot be trusted, so start over.
        offset = 0
        response = urlopen(url, timeout=TIMEOUT_S)
    with response:
        if response.status != 206:
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            part.open("ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.stem,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    if total is not None and received != total:
        raise http.client.IncompleteRead(b"", total - received)


def _describe(error: Exception) -> str:
    if isinstance(error, HTTPError):
        return f"the server answered HTTP {error.code} {error.reason}"
    if isinstance(error, URLError):
        return str(error.reason)
    if isinstance(error, http.client.IncompleteRead):
        return f"the connection ended {error.expected} bytes before the announced size"
    return str(error) or type(error).__name__


def _verify(archive: Path, entry: DatasetEntry, url: str) -> None:
    """Read the whole archive (and compare its sha256 when one is known); delete it if it is damaged."""
    try:
        problem = _integrity_problem(archive)
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as error:
        problem = str(error) or type(error).__name__
    if problem is None and entry.sha256 is not None:
        digest = _sha256(archive)
        if digest != entry.sha256:
            problem = f"its sha256 is {digest}, expected {entry.sha256}"
    if problem is not None:
        archive.unlink()
        raise DatasetError(
            f"The archive '{archive}' is corrupt ({problem}), so it was deleted and the next try downloads "
            f"it again from {url}. If this keeps happening, the transfer is being damaged on the way: fetch "
            f"the archive another way and put it at '{archive}'."
        )


def _integrity_problem(archive: Path) -> str | None:
    if _is_zip(archive):
        with zipfile.ZipFile(archive) as zipped:
            bad_member = zipped.testzip()
        return None if bad_member is None else f"member '{bad_member}' fails its CRC check"
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile():
                stream = tar.extractfile(member)
                while stream.read(CHUNK_BYTES):
                    pass
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _is_zip(archive: Path) -> bool:
    return archive.name.endswith(".zip")


def _extract(archive: Path, entry: DatasetEntry, root: Path, target: Path) -> None:
    """Unpack into a temporary folder inside ``root`` and move the dataset into place only when complete."""
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        _unpack(archive, staging)
        extracted = staging / entry.name
        missing = _missing_subfolders(extracted, entry)
        if missing:
            expected = ", ".join(f"{entry.name}/{name}" for name in missing)
            raise DatasetError(
                f"The archive '{archive}' does not contain the expected {expected} folder(s), so it is not the {entry.kind} dataset '{entry.name}'. Delete it and run again to "
                f"download the official archive from {entry.url}."
            )
        try:
            os.replace(extracted, target)
        except OSError as error:
            if not is_present(entry, root):  # another process may have finished first
                raise DatasetError(
                    f"Could not move the extracted dataset to '{target}': {error}. Move or delete '{target}' "
                    "and run again."
                ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(archive: Path, destination: Path) -> None:
    try:
        if _is_zip(archive):
            with zipfile.ZipFile(archive) as zipped:
                _refuse_unsafe(archive, ((name, None) for name in zipped.namelist()))
                zipped.extractall(destination)
        else:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                _refuse_unsafe(archive, ((member.name, member) for member in members))
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(destination, filter="data")
                else:
                    tar.extractall(destination)
    except (tarfile.TarError, OSError) as error:
        raise DatasetError(
            f"Could not extract '{archive}' into '{destination.parent}': {error}. Check the free disk space "
            f"and permissions there; if the archive is at fault, delete it and run again."
        ) from None


def _refuse_unsafe(archive: Path, members: Iterable[tuple[str, tarfile.TarInfo | None]]) -> None:
    """Raise before anything is written if a member could land, or point, outside the extraction folder.

    ``members`` yields ``(name, TarInfo or None)``; zip members are never links.
    Link targets are resolved on their text, so a path that continues through
    another link of the archive is refused too: where it leads is only known
    once that link exists on disk.
    """
    members = list(members)
    symlinks = {name.rstrip("/") for name, info in members if info is not None and info.issym()}
    for name, info in members:
        reason = _unsafe_reason(name, info, symlinks)
        if reason is not None:
            raise DatasetError(
                f"The archive '{archive}' contains the unsafe member '{name}' ({reason}), so nothing was "
                f"extracted. The archive was left in place for inspection; delete it before trying again, and "
                f"get the dataset from the official {OFFICIAL_BASE_URL} or a mirror you trust."
            )


def _unsafe_reason(name: str, info: tarfile.TarInfo | None, symlinks: set[str]) -> str | None:
    path = PureWindowsPath(name)  # splits on both separators and sees drive letters
    if path.anchor:
        return "absolute path"
    if ".." in path.parts:
        return "'..' in its path"
    if _lexical_resolve(PurePosixPath(), name, symlinks) is None:
        return "its path runs through a link"
    if info is None or not (info.issym() or info.islnk()):
        return None
    if info.linkname.startswith("/"):
        return f"link to the absolute path '{info.linkname}'"
    # A symlink's target is relative to its own folder, a hard link's to the archive's top.
    start = PurePosixPath(name).parent if info.issym() else PurePosixPath()
    if _lexical_resolve(start, info.linkname, symlinks) is None:
        return f"link to '{info.linkname}', outside the extraction folder"
    return None


def _lexical_resolve(start: PurePosixPath, relative: str, symlinks: set[str]) -> str | None:
    """``start / relative`` with ``.`` and ``..`` applied; None if it climbs above the top or passes through a symlink."""
    parts = [part for part in start.parts if part != "."]
    for part in PurePosixPath(relative).parts:
        if "/".join(parts) in symlinks:
            return None
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)
