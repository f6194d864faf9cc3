"""Tests for the dataset downloader: tiny archives served from 127.0.0.1, never the real server."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from gantrain.data.download import BASE_URL_ENV, DATA_ROOT_ENV, DATASETS, download, ensure_dataset, get_entry
from gantrain.errors import DatasetError

CYCLEGAN_MINI = DATASETS["cyclegan/mini"]
PIX2PIX_MINI = DATASETS["pix2pix/mini_pix2pix"]


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files like a static host, honouring ``Range: bytes=N-`` with 206.

    The server's ``cut_short`` sends only that many bytes of a body while
    announcing all of it, and ``ignore_range`` answers 200 as servers
    without Range support do.
    """

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        requested = self.headers.get("Range")
        start = 0 if requested is None or self.server.ignore_range else int(requested[len("bytes=") : -1])
        if start and start >= len(data):
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        body = data[start:]
        self.wfile.write(body[: self.server.cut_short] if self.server.cut_short else body)

    def log_message(self, format: str, *args) -> None:
        pass


@dataclasses.dataclass
class Server:
    """A running local dataset host: files under ``folder`` are served at ``url``."""

    folder: Path
    httpd: ThreadingHTTPServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        return self.httpd.requests

    def publish(self, entry, data: bytes) -> None:
        path = self.folder / entry.collection / "datasets" / entry.archive
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def no_mirror_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BASE_URL_ENV, raising=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    folder = tmp_path / "www"
    folder.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(folder)))
    httpd.requests, httpd.cut_short, httpd.ignore_range = [], None, False
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    running = Server(folder, httpd)
    yield running
    if thread.is_alive():
        running.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def closed_port_url() -> str:
    """A local URL nothing listens on, so connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def png_bytes(color: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (color, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(color: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 4), (0, color, 0)).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in files.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


def make_tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def tar_file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def tar_symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def cyclegan_zip() -> bytes:
    return make_zip(
        {f"mini/{split}/a.png": png_bytes(index * 60) for index, split in enumerate(CYCLEGAN_MINI.subfolders)}
    )


def pix2pix_tar_gz() -> bytes:
    return make_tar_gz(
        [tar_file(f"mini_pix2pix/{split}/1.jpg", jpeg_bytes(100)) for split in PIX2PIX_MINI.subfolders]
    )


def assert_nothing_extracted(root: Path) -> None:
    """No dataset folder and no leftover extraction folder: at most the downloads folder remains."""
    assert not (root / CYCLEGAN_MINI.folder).exists()
    assert not (root / PIX2PIX_MINI.folder).exists()
    assert {path.name for path in root.iterdir()} <= {".downloads"}


def test_cyclegan_download_extracts_the_layout_removes_the_archive_and_then_needs_no_network(server, root):
    server.publish(CYCLEGAN_MINI, cyclegan_zip())

    folder = download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)

    assert folder == root / "mini"
    assert sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*.png")) == [
        "testA/a.png",
        "testB/a.png",
        "trainA/a.png",
        "trainB/a.png",
    ]
    assert Image.open(folder / "trainA" / "a.png").size == (4, 4)
    assert {path.name for path in root.iterdir()} == {"mini"}, "archive and temporary folders are removed"
    assert server.requests == [("/cyclegan/datasets/mini.zip", None)]

    server.stop()
    assert download(CYCLEGAN_MINI, root, base_url=server.url, progress=False) == folder


def test_pix2pix_download_extracts_train_val_test_and_can_keep_the_archive(server, root):
    server.publish(PIX2PIX_MINI, pix2pix_tar_gz())

    folder = download(PIX2PIX_MINI, root, base_url=server.url, progress=False, keep_archive=True)

    assert folder == root / "mini_pix2pix"
    assert all((folder / split / "1.jpg").is_file() for split in ("train", "val", "test"))
    assert (root / ".downloads" / "mini_pix2pix.tar.gz").is_file()
    assert server.requests == [("/pix2pix/datasets/mini_pix2pix.tar.gz", None)]


def test_truncated_archive_is_reported_corrupt_and_deleted(server, root):
    whole = cyclegan_zip()
    server.publish(CYCLEGAN_MINI, whole[: len(whole) // 2])

    with pytest.raises(DatasetError, match="corrupt") as caught:
        download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)

    assert f"{server.url}/cyclegan/datasets/mini.zip" in str(caught.value)
    assert not (root / ".downloads" / "mini.zip").exists(), "the next try must download it again"
    assert_nothing_extracted(root)


def test_sha256_is_checked_when_the_entry_has_one(server, root):
    data = cyclegan_zip()
    server.publish(CYCLEGAN_MINI, data)

    with pytest.raises(DatasetError, match="corrupt.*sha256"):
        download(
            dataclasses.replace(CYCLEGAN_MINI, sha256="0" * 64), root, base_url=server.url, progress=False
        )
    assert_nothing_extracted(root)

    with_digest = dataclasses.replace(CYCLEGAN_MINI, sha256=hashlib.sha256(data).hexdigest())
    folder = download(with_digest, root, base_url=server.url, progress=False)
    assert (folder / "trainA" / "a.png").is_file()


@pytest.mark.parametrize(
    ("entry", "archive", "member"),
    [
        (
            CYCLEGAN_MINI,
            lambda tmp: make_zip({"mini/trainA/a.png": b"x", "../evil.txt": b"evil"}),
            "../evil.txt",
        ),
        (
            PIX2PIX_MINI,
            lambda tmp: make_tar_gz(
                [tar_file("mini_pix2pix/train/1.jpg", b"x"), tar_file(str(tmp / "evil.txt"), b"evil")]
            ),
            "evil.txt",
        ),
        (
            PIX2PIX_MINI,
            lambda tmp: make_tar_gz([tar_symlink("mini_pix2pix/train/link", "../../../evil.txt")]),
            "mini_pix2pix/train/link",
        ),
        (
            PIX2PIX_MINI,
            lambda tmp: make_tar_gz(
                [tar_symlink("up", "."), tar_symlink("mini_pix2pix/train/link", "../../up/..")]
            ),
            "mini_pix2pix/train/link",
        ),
    ],
    ids=["zip-dotdot", "tar-absolute", "tar-symlink-outside", "tar-symlink-through-symlink"],
)
def test_members_that_escape_are_refused_and_nothing_is_written(
    server, root, tmp_path, entry, archive, member
):
    server.publish(entry, archive(tmp_path))

    with pytest.raises(DatasetError, match="unsafe member") as caught:
        download(entry, root, base_url=server.url, progress=False)

    assert member in str(caught.value)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not any(path.is_symlink() for path in tmp_path.rglob("*"))
    assert_nothing_extracted(root)


def test_symlink_inside_the_dataset_is_allowed(server, root):
    members = [tar_file(f"mini_pix2pix/{split}/1.jpg", b"x") for split in PIX2PIX_MINI.subfolders]
    server.publish(
        PIX2PIX_MINI, make_tar_gz([*members, tar_symlink("mini_pix2pix/val/2.jpg", "../train/1.jpg")])
    )

    folder = download(PIX2PIX_MINI, root, base_url=server.url, progress=False)

    assert (folder / "val" / "2.jpg").read_bytes() == b"x"


def test_unreachable_server_explains_outages_and_where_to_put_files(root, closed_port_url):
    with pytest.raises(DatasetError) as caught:
        download(CYCLEGAN_MINI, root, base_url=closed_port_url, progress=False)

    message = str(caught.value)
    assert f"{closed_port_url}/cyclegan/datasets/mini.zip" in message
    assert "efrosgans.eecs.berkeley.edu" in message and "outages" in message
    assert str(root / ".downloads" / "mini.zip") in message
    assert str(root / "mini" / "trainA") in message
    assert "\n" not in message
    assert not (root / "mini").exists()


def test_missing_archive_on_the_server_is_a_dataset_error(server, root):
    with pytest.raises(DatasetError, match="HTTP 404"):
        download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)


def test_archive_placed_by_hand_is_extracted_without_network(root, closed_port_url):
    (root / ".downloads").mkdir(parents=True)
    (root / ".downloads" / "mini.zip").write_bytes(cyclegan_zip())

    folder = download(CYCLEGAN_MINI, root, base_url=closed_port_url, progress=False)

    assert (folder / "testB" / "a.png").is_file()


def test_interrupted_download_resumes_with_a_range_request(server, root):
    data = cyclegan_zip()
    server.publish(CYCLEGAN_MINI, data)
    half = len(data) // 2
    server.httpd.cut_short = half

    with pytest.raises(DatasetError, match="resumes"):
        download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)
    part = root / ".downloads" / "mini.zip.part"
    assert part.read_bytes() == data[:half]

    server.httpd.cut_short = None
    folder = download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)

    assert server.requests[-1] == ("/cyclegan/datasets/mini.zip", f"bytes={half}-")
    assert (folder / "trainA" / "a.png").is_file()
    assert not part.exists()


def test_download_restarts_when_the_server_ignores_range(server, root):
    data = cyclegan_zip()
    server.publish(CYCLEGAN_MINI, data)
    server.httpd.ignore_range = True
    (root / ".downloads").mkdir(parents=True)
    (root / ".downloads" / "mini.zip.part").write_bytes(b"stale bytes from another file")

    folder = download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)

    assert server.requests[-1][1] is not None
    assert (folder / "trainA" / "a.png").is_file()


def test_download_restarts_when_the_part_file_is_already_as_long_as_the_archive(server, root):
    data = cyclegan_zip()
    server.publish(CYCLEGAN_MINI, data)
    (root / ".downloads").mkdir(parents=True)
    (root / ".downloads" / "mini.zip.part").write_bytes(bytes(len(data)))

    folder = download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)

    assert [range_header for _, range_header in server.requests] == [f"bytes={len(data)}-", None]
    assert (folder / "trainA" / "a.png").is_file()


def test_incomplete_existing_folder_is_not_overwritten(server, root):
    (root / "mini" / "trainA").mkdir(parents=True)

    with pytest.raises(DatasetError, match="trainB"):
        download(CYCLEGAN_MINI, root, base_url=server.url, progress=False)
    assert server.requests == []


def test_names_are_the_dataset_options_and_archive_names_resolve_by_kind():
    """gantrain-data and dataset= say the same: facades is pix2pix's paired set, facades_unaligned CycleGAN's copy."""
    assert get_entry("facades") == DATASETS["pix2pix/facades"]
    assert get_entry("facades_unaligned") == DATASETS["cyclegan/facades"]
    assert get_entry("maps_unaligned").kind == "unaligned" and get_entry("maps").kind == "aligned"
    assert get_entry("facades", "unaligned") == DATASETS["cyclegan/facades"]  # a config's name: + kind
    assert get_entry("facades", "aligned") == DATASETS["pix2pix/facades"]
    assert get_entry("pix2pix/facades").kind == "aligned"
    assert get_entry("edges2shoes").kind == "aligned"
    assert DATASETS["cyclegan/facades"].folder != DATASETS["pix2pix/facades"].folder
    assert DATASETS["pix2pix/maps"].url == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/maps.tar.gz"
    with pytest.raises(DatasetError, match="horse2zebra"):
        get_entry("horse2zebra", "aligned")


def test_ensure_dataset_without_download_names_the_command(root):
    with pytest.raises(DatasetError) as caught:
        ensure_dataset("mini", "unaligned", root, download=False)

    assert f"gantrain-data download mini --root {root}" in str(caught.value)
    assert str(root / "mini" / "trainA") in str(caught.value)
    with pytest.raises(DatasetError, match="gantrain-data download facades --root"):
        ensure_dataset("facades", "aligned", root, download=False)
    with pytest.raises(DatasetError, match="gantrain-data download facades_unaligned --root"):
        ensure_dataset("facades", "unaligned", root, download=False)


def test_ensure_dataset_downloads_from_the_mirror_in_the_environment(server, root, monkeypatch):
    server.publish(PIX2PIX_MINI, pix2pix_tar_gz())
    monkeypatch.setenv(BASE_URL_ENV, server.url)

    folder = ensure_dataset("mini_pix2pix", "aligned", str(root), download=True)

    assert folder == root / "mini_pix2pix"
    server.stop()
    assert ensure_dataset("mini_pix2pix", "aligned", root, download=False) == folder


def run_data_cli(*args: str, cwd: Path, mirror: str | None = None, data_root: str | None = None
                 ) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in (BASE_URL_ENV, DATA_ROOT_ENV)}
    env |= {BASE_URL_ENV: mirror} if mirror else {}
    env |= {DATA_ROOT_ENV: data_root} if data_root else {}
    return subprocess.run(
        [sys.executable, "-m", "gantrain.data_cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_downloads_then_lists_the_dataset_as_present(server, tmp_path):
    server.publish(CYCLEGAN_MINI, cyclegan_zip())

    fetched = run_data_cli("download", "mini", "--base-url", server.url, cwd=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip() == str(Path("data") / "mini")
    assert (tmp_path / "data" / "mini" / "trainB" / "a.png").is_file()

    listed = run_data_cli("list", cwd=tmp_path, mirror=server.url)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(rows) >= {"facades", "facades_unaligned", "maps", "maps_unaligned", "horse2zebra"}
    assert len(rows) == len(DATASETS)  # each dataset once, under its dataset= name
    size = len(cyclegan_zip()) / 2**20
    assert re.search(rf"^mini +unaligned +integrity \+ layout +{size:,.0f} MiB +yes +http://127.0.0.1", rows["mini"])
    assert re.search(r"^facades +aligned +integrity \+ layout +\? \(offline\) +no ", rows["facades"])  # unpublished
    offline = run_data_cli("list", "--offline", cwd=tmp_path, mirror=server.url)
    assert re.search(r"^mini +unaligned +integrity \+ layout +\? \(offline\) +yes", offline.stdout, re.MULTILINE)


def test_download_by_dataset_name_fetches_the_collection_that_dataset_means(server, tmp_path):
    server.publish(PIX2PIX_MINI, pix2pix_tar_gz())
    fetched = run_data_cli("download", "mini_pix2pix", "--base-url", server.url, cwd=tmp_path,
                           data_root=str(tmp_path / "shared"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "shared" / "mini_pix2pix" / "train").is_dir()  # $GANTRAIN_DATA is the default root


def test_cli_failure_is_one_paragraph_and_exit_code_2(tmp_path, closed_port_url):
    result = run_data_cli(
        "download", "mini", "--root", "elsewhere", "--base-url", closed_port_url, cwd=tmp_path
    )

    assert result.returncode == 2
    assert result.stderr.startswith("gantrain: error: Could not download")
    assert result.stderr.strip().count("\n") == 0
    assert str(Path("elsewhere") / ".downloads" / "mini.zip") in result.stderr
    assert result.stdout == ""
