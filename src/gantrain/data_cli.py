"""``gantrain-data``: list and download the official CycleGAN and pix2pix datasets.

Downloading ahead of training keeps a slow or unavailable dataset server out
of the training run, and lets the data go onto machines without internet.  The names
are the ``dataset=`` options (``facades`` is pix2pix's paired set, ``facades_unaligned``
CycleGAN's copy), and the data root is the one training reads: ``$GANTRAIN_DATA``, else
``data/`` in the working directory.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gantrain.build import report_user_errors
from gantrain.data.download import (
    ALIGNED,
    BASE_URL_ENV,
    DATA_ROOT_ENV,
    DATASETS,
    UNALIGNED,
    archive_size,
    archive_url,
    download,
    get_entry,
    is_present,
)

DEFAULT_ROOT = Path(os.environ.get(DATA_ROOT_ENV, "data"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gantrain-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser(
        "list", help="every dataset: its kind, how a download is verified, the archive's size, whether it is present"
    )
    listing.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="data folder (default: %(default)s)")
    listing.add_argument("--offline", action="store_true", help="do not ask the server for the archives' sizes")

    fetch = commands.add_parser("download", help="download and extract one dataset, then print its folder")
    fetch.add_argument("name", help="the dataset= name, e.g. horse2zebra, facades (pix2pix), facades_unaligned")
    fetch.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="data folder (default: %(default)s)")
    fetch.add_argument(
        "--kind",
        choices=(UNALIGNED, ALIGNED),
        help="which collection's archive a bare archive name means (the dataset= names need no --kind)",
    )
    fetch.add_argument("--base-url", help=f"mirror replacing the official server (also: ${BASE_URL_ENV})")
    fetch.add_argument("--keep-archive", action="store_true", help="keep the archive in <root>/.downloads")
    return parser


def size_text(size: int | None) -> str:
    return "? (offline)" if size is None else f"{size / 2**20:,.0f} MiB"


def print_table(root: Path, offline: bool) -> None:
    entries = list(DATASETS.values())
    sizes = [None] * len(entries)
    if not offline:  # one HEAD request each, at once
        with ThreadPoolExecutor(8) as pool:
            sizes = list(pool.map(archive_size, entries))
    rows = [("DATASET", "KIND", "VERIFIED BY", "ARCHIVE", "PRESENT", "URL")]
    rows += [
        (entry.option, entry.kind, entry.check, size_text(size), "yes" if is_present(entry, root) else "no",
         archive_url(entry))
        for entry, size in zip(entries, sizes, strict=True)
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for *padded, last in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(padded, widths)), last, sep="  ")


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print_table(args.root, args.offline)
    else:
        entry = get_entry(args.name, args.kind)
        print(download(entry, args.root, base_url=args.base_url, keep_archive=args.keep_archive))


if __name__ == "__main__":
    main()
