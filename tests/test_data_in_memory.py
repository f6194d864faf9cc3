"""``dataset.in_memory=true``: images decoded once as uint8, cropped / flipped / normalised a batch at a time.

Every in-memory dataset is compared with its usual (PIL, per item) path on tiny
fake data in tmp_path: with ``train=False`` the batches must be the same, and
with ``train=True`` every image must be a genuine crop (maybe mirrored) of the
resized image, drawn per image, from torch's global RNG.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import expected_error
from hydra import compose, initialize_config_module
from PIL import Image
from torch.utils.data import default_collate

from gantrain.build import build_dataset
from gantrain.config import register_configs
from gantrain.data.celeba import celeba
from gantrain.data.domains import DomainFolders, WithReferences
from gantrain.data.image_files import BadImageFile
from gantrain.data.images import cifar10, image_folder, mnist
from gantrain.data.in_memory import MEMORY_SHARE, BatchAugment, keeps_in_memory, skipping_bad_files
from gantrain.data.shapes import ShapesDataset
from gantrain.data.shapes_attributes import ShapesAttributes
from gantrain.data.shapes_translation import ShapesPaired, ShapesUnpaired
from gantrain.data.translation import AlignedFolders, UnalignedFolders

SIZE, LOAD = 16, 24
"""Crop and load size of the translation fixtures: 9 x 9 crop offsets."""
BATCH = 16
STEP = 1 / 127.5
"""One uint8 level in [-1, 1]."""


def noise(width: int, height: int, seed: int, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(path: Path, pixels: np.ndarray, format: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=format)


def unaligned_folder(root: Path, count_a: int = 5, count_b: int = 4, same: bool = False) -> Path:
    """trainA/trainB/testA/testB of non-square noise; ``same``: one image, the same in A and B."""
    for split_code, split in enumerate(("train", "test")):
        for side_code, (side, count) in enumerate((("A", count_a), ("B", count_b))):
            for number in range(1 if same else count):
                seed = 0 if same else 100 * split_code + 10 * side_code + number
                save(root / f"{split}{side}" / f"{number:03d}.png", noise(37, 29, seed))
    return root


def aligned_folder(root: Path, count: int = 4) -> Path:
    """train/ and test/ pairs whose A and B halves are the same noise, so any misalignment shows."""
    for split in ("train", "test"):
        for number in range(count):
            half = noise(30, 26, seed=100 + number)
            save(root / split / f"{number}.png", np.concatenate([half, half], axis=1))
    return root


def collate(dataset, indices) -> object:
    return default_collate([dataset[index] for index in indices])


def find_crop(image: torch.Tensor, source: torch.Tensor) -> tuple[int, int, bool]:
    """(top, left, flipped) of the one crop of ``source`` (C x L x L) that equals ``image`` (C x S x S)."""
    size = image.shape[-1]
    matches = [
        (top, left, flipped)
        for flipped in (False, True)
        for top in range(source.shape[-2] - size + 1)
        for left in range(source.shape[-1] - size + 1)
        if torch.allclose(
            (source.flip(-1) if flipped else source)[:, top : top + size, left : left + size],
            image,
            rtol=0,
            atol=1e-6,
        )
    ]
    assert len(matches) == 1, f"expected exactly one matching crop, found {matches}"
    return matches[0]


def check_float_batch(images: torch.Tensor, channels: int, size: int) -> None:
    assert images.dtype == torch.float32
    assert images.shape == (BATCH, channels, size, size)
    assert images.min() >= -1 and images.max() <= 1


# Translation folders


@pytest.mark.parametrize("channels", [1, 3])
def test_unaligned_test_batches_equal_the_pil_path(tmp_path: Path, channels: int) -> None:
    root = str(unaligned_folder(tmp_path))
    kwargs = {"image_size": SIZE, "load_size": LOAD, "channels": channels, "split": "test"}
    in_memory = UnalignedFolders(root, **kwargs, in_memory=True)
    pil = UnalignedFolders(root, **kwargs)
    raw = collate(in_memory, range(len(in_memory)))
    assert raw["A"].dtype == torch.uint8 and raw["A"].shape[-2:] == (LOAD, LOAD)
    state = torch.get_rng_state()
    batch = in_memory.batch_transform(raw, train=False)
    assert torch.equal(torch.get_rng_state(), state), "train=False must draw no random numbers"
    expected = collate(pil, range(len(pil)))
    for side in "AB":
        assert batch[side].dtype == torch.float32
        torch.testing.assert_close(batch[side], expected[side], rtol=0, atol=1e-6)


def test_aligned_test_batches_equal_the_pil_path(tmp_path: Path) -> None:
    root = str(aligned_folder(tmp_path))
    kwargs = {"image_size": SIZE, "load_size": LOAD, "split": "test"}
    in_memory = AlignedFolders(root, **kwargs, in_memory=True)
    batch = in_memory.batch_transform(collate(in_memory, range(4)), train=False)
    expected = collate(AlignedFolders(root, **kwargs), range(4))
    for side in "AB":
        torch.testing.assert_close(batch[side], expected[side], rtol=0, atol=1e-6)


def test_train_split_with_train_false_is_the_centre_crop(tmp_path: Path) -> None:
    """The fixed sample batch of a train-split dataset: what the PIL path's test split gives."""
    root = str(aligned_folder(tmp_path))
    in_memory = AlignedFolders(root, image_size=SIZE, load_size=LOAD, in_memory=True)
    batch = in_memory.batch_transform(collate(in_memory, range(4)), train=False)
    expected = collate(AlignedFolders(root, image_size=SIZE, load_size=LOAD, split="test"), range(4))
    torch.testing.assert_close(batch["A"], expected["A"], rtol=0, atol=1e-6)


def test_aligned_train_crops_are_per_image_in_range_flipped_and_aligned(tmp_path: Path) -> None:
    root = str(aligned_folder(tmp_path))
    dataset = AlignedFolders(root, image_size=SIZE, load_size=LOAD, in_memory=True)
    whole = AlignedFolders(root, image_size=LOAD, load_size=LOAD, split="test")  # the resized images
    indices = [number % 4 for number in range(BATCH)]
    torch.manual_seed(0)
    spots = []
    for _ in range(4):
        batch = dataset.batch_transform(collate(dataset, indices), train=True)
        check_float_batch(batch["A"], 3, SIZE)
        assert torch.equal(batch["A"], batch["B"]), "A and B of a pair must share crop and flip"
        spots += [
            find_crop(image, whole[index]["A"]) for image, index in zip(batch["A"], indices, strict=True)
        ]
    assert len({(top, left) for top, left, _ in spots}) > 10, "each image should get its own crop"
    tops, lefts = {top for top, _, _ in spots}, {left for _, left, _ in spots}
    assert min(tops) == 0 and max(tops) == LOAD - SIZE and min(lefts) == 0 and max(lefts) == LOAD - SIZE
    flipped = sum(flip for _, _, flip in spots)
    assert 16 <= flipped <= 48, f"{flipped} of 64 images flipped, expected about half"


def test_unaligned_sides_draw_their_own_crops(tmp_path: Path) -> None:
    root = str(unaligned_folder(tmp_path, same=True))
    dataset = UnalignedFolders(root, image_size=SIZE, load_size=LOAD, in_memory=True)
    torch.manual_seed(0)
    batch = dataset.batch_transform(collate(dataset, [0] * BATCH), train=True)
    same = [torch.equal(a, b) for a, b in zip(batch["A"], batch["B"], strict=True)]
    assert sum(same) < 4, "A and B are unpaired: their crops and flips should differ"


def test_unaligned_train_items_draw_a_random_b(tmp_path: Path) -> None:
    dataset = UnalignedFolders(
        str(unaligned_folder(tmp_path)), image_size=SIZE, load_size=LOAD, in_memory=True
    )
    torch.manual_seed(0)
    items = [dataset[0]["B"] for _ in range(12)]
    assert len({bytes(item.flatten().numpy()) for item in items}) > 1


def test_flip_false_never_flips(tmp_path: Path) -> None:
    root = str(aligned_folder(tmp_path))
    dataset = AlignedFolders(root, image_size=SIZE, load_size=LOAD, flip=False, in_memory=True)
    whole = AlignedFolders(root, image_size=LOAD, load_size=LOAD, split="test")
    torch.manual_seed(1)
    batch = dataset.batch_transform(collate(dataset, [0] * BATCH), train=True)
    assert not any(find_crop(image, whole[0]["A"])[2] for image in batch["A"])


def test_same_seed_same_batch(tmp_path: Path) -> None:
    dataset = UnalignedFolders(
        str(unaligned_folder(tmp_path)), image_size=SIZE, load_size=LOAD, in_memory=True
    )

    def batch(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return dataset.batch_transform(collate(dataset, range(5)), train=True)

    first, again, other = batch(3), batch(3), batch(4)
    assert all(torch.equal(first[side], again[side]) for side in "AB")
    assert not torch.equal(first["A"], other["A"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_transform_on_cuda_gives_the_cpu_batch() -> None:
    """The draws come from the CPU RNG, so the device does not change the batch."""
    augment = BatchAugment(SIZE, random_crop=True, flip=True, channels=3, paired=True)
    batch = {
        "A": torch.randint(0, 256, (BATCH, 3, LOAD, LOAD), dtype=torch.uint8),
        "B": torch.randint(0, 256, (BATCH, 3, LOAD, LOAD), dtype=torch.uint8),
        "label": torch.arange(BATCH),
    }
    torch.manual_seed(0)
    on_cpu = augment(batch, train=True)
    torch.manual_seed(0)
    on_cuda = augment({key: value.cuda() for key, value in batch.items()}, train=True)
    for key, value in on_cpu.items():
        assert on_cuda[key].device.type == "cuda" and on_cuda[key].dtype == value.dtype
        torch.testing.assert_close(on_cuda[key].cpu(), value, rtol=0, atol=1e-6)


def test_labels_and_float_tensors_pass_unchanged() -> None:
    augment = BatchAugment(None, random_crop=False, flip=False, channels=3)
    images = torch.randint(0, 256, (BATCH, 3, 8, 8), dtype=torch.uint8)
    labels, floats = torch.arange(BATCH), torch.rand(BATCH, 3, 8, 8)
    out, out_labels, out_floats = augment((images, labels, floats), train=True)
    assert torch.equal(out, images.float() / 127.5 - 1)
    assert out_labels is labels and out_floats is floats


def test_other_preprocess_modes_are_refused_in_memory(tmp_path: Path) -> None:
    root = str(aligned_folder(tmp_path))
    expected_error(
        lambda: AlignedFolders(root, image_size=SIZE, preprocess="crop", in_memory=True),
        "dataset.in_memory=true",
        "resize_and_crop",
        "preprocess=crop",
    )


def test_a_bad_file_is_named_when_decoding(tmp_path: Path) -> None:
    root = unaligned_folder(tmp_path)
    (root / "trainB" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BadImageFile, match="broken.png"):
        UnalignedFolders(str(root), image_size=SIZE, load_size=LOAD, in_memory=True)


# Image folder and CelebA


def test_image_folder_batches_equal_the_pil_path(tmp_path: Path) -> None:
    for number, (width, height) in enumerate([(30, 20), (17, 33), (24, 24), (50, 40)]):
        save(tmp_path / f"{number}.png", noise(width, height, seed=number))
    save(tmp_path / "gray.png", noise(20, 30, seed=9, channels=1))
    in_memory = image_folder(str(tmp_path), image_size=SIZE, in_memory=True)
    raw = collate(in_memory, range(5))
    assert raw[0].dtype == torch.uint8
    images, labels = in_memory.batch_transform(raw, train=True)  # nothing random to draw: no flip, no crop
    expected, expected_labels = collate(image_folder(str(tmp_path), image_size=SIZE), range(5))
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert torch.equal(labels, expected_labels)


@pytest.fixture
def celeba_folder(tmp_path: Path) -> Path:
    for number in range(1, 5):  # celeba reads *.jpg; lossless content keeps the comparison exact
        save(tmp_path / "img_align_celeba" / f"{number:06d}.jpg", noise(178, 218, seed=number), format="PNG")
    return tmp_path


def test_celeba_test_batches_equal_the_pil_path_and_train_flips(celeba_folder: Path) -> None:
    in_memory = celeba(str(celeba_folder), image_size=SIZE, split="all", flip=True, in_memory=True)
    indices = [number % 4 for number in range(BATCH)]
    raw = collate(in_memory, indices)
    images, _ = in_memory.batch_transform(raw, train=False)
    expected, _ = collate(celeba(str(celeba_folder), image_size=SIZE, split="all"), indices)
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    torch.manual_seed(0)
    flipped, _ = in_memory.batch_transform(raw, train=True)
    check_float_batch(flipped, 3, SIZE)
    mirrored = [
        torch.equal(image, reference.flip(-1)) for image, reference in zip(flipped, images, strict=True)
    ]
    kept = [torch.equal(image, reference) for image, reference in zip(flipped, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 3 <= sum(mirrored) <= 13


# Embedded shapes


SHAPES = {
    "shapes_rgb": lambda **kw: ShapesDataset(num_samples=24, **kw),
    "shapes_gray": lambda **kw: ShapesDataset(num_samples=24, channels=1, **kw),
    "unpaired": lambda **kw: ShapesUnpaired(num_samples=24, **kw),
    "paired_gray": lambda **kw: ShapesPaired(num_samples=24, channels=1, split="test", **kw),
    "attributes": lambda **kw: ShapesAttributes(num_samples=24, **kw),
    "domains": lambda **kw: ShapesAttributes(num_samples=24, labels="domains", **kw),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_shapes_kept_in_memory_equal_the_rendered_ones(name: str) -> None:
    in_memory, rendered = SHAPES[name](in_memory=True), SHAPES[name]()
    batch = in_memory.batch_transform(collate(in_memory, range(24)), train=True)
    expected = collate(rendered, range(24))
    pairs = zip(batch.values(), expected.values()) if isinstance(expected, dict) else zip(batch, expected)
    for got, want in pairs:
        assert got.dtype == want.dtype
        assert torch.equal(got, want)
    with pytest.raises(IndexError):
        in_memory[24]


def test_reference_pairs_pass_the_batch_transform_on() -> None:
    in_memory = WithReferences(SHAPES["domains"](in_memory=True), seed=0)
    rendered = WithReferences(SHAPES["domains"](), seed=0)
    batch = in_memory.batch_transform(collate(in_memory, range(8)), train=False)
    expected = collate(rendered, range(8))
    assert all(torch.equal(batch[key], expected[key]) for key in expected)


# Which datasets take the option


def test_datasets_without_in_memory_have_no_batch_transform(tmp_path: Path) -> None:
    unaligned = UnalignedFolders(str(unaligned_folder(tmp_path)), image_size=SIZE, load_size=LOAD)
    shapes = ShapesDataset(num_samples=4)
    assert unaligned.batch_transform is None and shapes.batch_transform is None
    assert unaligned[0]["A"].dtype == torch.float32 and shapes[0][0].dtype == torch.float32


@pytest.mark.parametrize(
    "make",
    [
        lambda root: DomainFolders(root, in_memory=True),
        lambda root: mnist(root, image_size=32, channels=1, download=False, in_memory=True),
        lambda root: cifar10(root, image_size=32, in_memory=True),
    ],
    ids=["domains", "mnist", "cifar10"],
)
def test_unsupported_datasets_refuse_in_memory(tmp_path: Path, make) -> None:
    expected_error(
        lambda: make(str(tmp_path)),
        "dataset.in_memory=true is not supported",
        "celeba",
        "resize_and_crop",
        "shapes",
        "dataset.in_memory=auto or false",
    )


def test_the_config_key_reaches_the_dataset() -> None:
    register_configs()
    with initialize_config_module("gantrain.configs", version_base="1.3"):
        cfg = compose(
            "train", overrides=["dataset=shapes", "dataset.num_samples=8", "dataset.in_memory=true"]
        )
        assert cfg.dataset.in_memory is True
        dataset = build_dataset(cfg)
        assert dataset.batch_transform is not None and dataset[0][0].dtype == torch.uint8
        by_default = compose("train", overrides=["dataset=shapes_unpaired", "dataset.num_samples=8"])
        assert by_default.dataset.in_memory == "auto"
        assert build_dataset(by_default).batch_transform is not None  # 8 tiny pairs fit in any budget
        off = compose("train", overrides=["dataset=shapes_unpaired", "dataset.num_samples=8", "dataset.in_memory=false"])
        assert getattr(build_dataset(off), "batch_transform", None) is None


# dataset.in_memory=auto: the decision, its log line, and bad files under trainer.bad_files=skip


@pytest.mark.parametrize(("available", "kept"), [(2 * 3 * 16 * 16 * 10 / MEMORY_SHARE, True),
                                                 (2 * 3 * 16 * 16 * 10 / MEMORY_SHARE - 1, False)])
def test_auto_keeps_the_images_when_they_fit_the_budget(available, kept, monkeypatch, caplog) -> None:
    monkeypatch.setattr("gantrain.data.in_memory.available_memory", lambda: int(available))
    caplog.set_level("INFO", logger="gantrain.data.in_memory")
    # 10 items of two 3 x 16 x 16 uint8 images: 15,360 bytes
    assert keeps_in_memory("auto", 10, (2, 3, 16, 16), "pairs") is kept
    (line,) = [record.getMessage() for record in caplog.records]
    assert line.startswith(f"dataset.in_memory=auto: {'on' if kept else 'off'}. 10 pairs of 2x3x16x16 uint8 take ")
    assert f"({round(100 * MEMORY_SHARE)}% of the " in line
    assert ("trainer.num_workers" in line) is not kept  # when off, what would help
    assert keeps_in_memory(True, 10, (3, 16, 16), "x") is True and keeps_in_memory(False, 10, (3, 16, 16), "x") is False
    expected_error(lambda: keeps_in_memory("sometimes", 10, (3, 16, 16), "x"), "dataset.in_memory='sometimes'",
                   "auto", "true or false")


def test_auto_turns_off_for_datasets_that_cannot_and_for_other_preprocessing(tmp_path: Path, caplog) -> None:
    caplog.set_level("INFO", logger="gantrain.data.in_memory")
    root = str(aligned_folder(tmp_path))
    folders = AlignedFolders(root, image_size=SIZE, preprocess="crop", in_memory="auto")
    assert folders.batch_transform is None
    assert "dataset.in_memory=auto: off, dataset.preprocess=crop cannot" in caplog.text
    for domain in ("cat", "dog"):
        save(tmp_path / "domains" / "train" / domain / "0.png", noise(20, 20, seed=1))
    domains = DomainFolders(str(tmp_path / "domains"), image_size=SIZE, in_memory="auto")
    assert getattr(domains, "batch_transform", None) is None
    assert "dataset.in_memory=auto: off, the domain folders" in caplog.text


@pytest.mark.parametrize("in_memory", [True, "auto"])
def test_a_bad_file_at_start_up_is_skipped_with_a_warning_under_skip(in_memory, tmp_path: Path, caplog) -> None:
    root = unaligned_folder(tmp_path)
    (root / "trainB" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(BadImageFile, match="broken.png"):  # trainer.bad_files=fail: stop before any work
        UnalignedFolders(str(root), image_size=SIZE, load_size=LOAD, in_memory=in_memory)
    with skipping_bad_files(True):
        kept = UnalignedFolders(str(root), image_size=SIZE, load_size=LOAD, in_memory=in_memory)
    assert kept.images_b is not None
    assert "Skipped at start-up (trainer.bad_files=skip): The image file" in caplog.text
    broken = next(number for number, file in enumerate(kept.files_b) if file.name == "broken.png")
    with pytest.raises(BadImageFile, match="broken.png"):  # drawn, it is skipped and counted as without in_memory
        kept.images_b[broken]
    assert kept.images_b[(broken + 1) % len(kept.files_b)].dtype == torch.uint8


def test_under_torchrun_the_processes_of_a_machine_share_the_budget(monkeypatch) -> None:
    monkeypatch.setattr("gantrain.data.in_memory.available_memory", lambda: int(3 * 16 * 16 * 10 / MEMORY_SHARE))
    assert keeps_in_memory("auto", 10, (3, 16, 16), "images")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # each process would keep its own copy
    assert not keeps_in_memory("auto", 10, (3, 16, 16), "images")
