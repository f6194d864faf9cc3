"""``gantrain-data``: list and download the official CycleGAN and pix2pix datasets.

Downloading ahead of training keeps a slow or unavailable dataset server out
of the training run, and lets the data go onto machines without internet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gantrain.build import report_user_errors
from gantrain.data.download import (
    ALIGNED,
    BASE_URL_ENV,
    DATASETS,
    UNALIGNED,
    archive_url,
    download,
    get_entry,
    is_present,
)

DEFAULT_ROOT = Path("data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gantrain-data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    listing = commands.add_parser("list", help="show every dataset, its kind, URL and whether it is present")
    listing.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="data folder (default: %(default)s)")

    fetch = commands.add_parser("download", help="download and extract one dataset, then print its folder")
    fetch.add_argument("name", help="dataset name, e.g. horse2zebra, or a key such as pix2pix/facades")
    fetch.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="data folder (default: %(default)s)")
    fetch.add_argument(
        "--kind",
        choices=(UNALIGNED, ALIGNED),
        help="which collection's dataset where both publish the name (default: unaligned)",
    )
    fetch.add_argument("--base-url", help=f"mirror replacing the official server (also: ${BASE_URL_ENV})")
    fetch.add_argument("--keep-archive", action="store_true", help="keep the archive in <root>/.downloads")
    return parser


def print_table(root: Path) -> None:
    rows = [("NAME", "KIND", "URL", "PRESENT")]
    rows += [
        (entry.name, entry.kind, archive_url(entry), "yes" if is_present(entry, root) else "no")
        for entry in DATASETS.values()
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for *padded, last in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(padded, widths)), last, sep="  ")


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        print_table(args.root)
    else:
        entry = get_entry(args.name, args.kind)
        print(download(entry, args.root, base_url=args.base_url, keep_archive=args.keep_archive))


if __name__ == "__main__":
    main()
