"""Multi-domain datasets: CelebA attributes and domain folders (tiny fakes in tmp_path), reference pairs, coloured shapes."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CELEBA_ATTRIBUTES, expected_error, write_attribute_file
from PIL import Image
from torch.utils.data import DataLoader

from gantrain.data.celeba import CELEBA_URL, celeba, celeba_split
from gantrain.data.domains import DomainFolders, WithReferences
from gantrain.data.shapes import SHAPE_NAMES, judge
from gantrain.data.shapes_attributes import (
    COLOUR_NAMES,
    DOMAIN_NAMES,
    ShapesAttributes,
    judge_attributes,
    prototype_colour,
)

# CelebA attributes


def test_celeba_labels_are_the_chosen_attributes(celeba_root) -> None:
    root, values = celeba_root
    chosen = ["Male", "Black_Hair", "Young"]
    dataset = celeba(str(root), image_size=8, attributes=chosen, split="all")
    assert (dataset.label_names, dataset.multi_label, len(dataset)) == (chosen, True, 30)
    assert [file.name for file in dataset.files[:2]] == ["000001.jpg", "000002.jpg"]
    columns = [CELEBA_ATTRIBUTES.index(name) for name in chosen]
    for index in (0, 7, 29):
        image, label = dataset[index]
        assert image.shape == (3, 8, 8)
        assert label.dtype == torch.float32
        assert label.tolist() == [float(values[index, column] == 1) for column in columns]
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch[1].shape == (4, 3)


def test_celeba_finds_the_attribute_file_beside_or_in_anno(celeba_root) -> None:
    root, _ = celeba_root
    images = str(root / "img_align_celeba")
    assert len(celeba(images, image_size=8, attributes=["Male"], split="all")) == 30
    (root / "Anno").mkdir()
    (root / "list_attr_celeba.txt").rename(root / "Anno" / "list_attr_celeba.txt")
    assert len(celeba(str(root), image_size=8, attributes=["Male"], split="all")) == 30
    (root / "Anno" / "list_attr_celeba.txt").unlink()
    expected_error(
        lambda: celeba(str(root), attributes=["Male"], split="all"),
        str(root / "list_attr_celeba.txt"),
        "Anno/list_attr_celeba.txt",
        CELEBA_URL,
        "dataset.attributes=[]",
    )


def test_celeba_unknown_attribute_lists_the_valid_names(celeba_root) -> None:
    root, _ = celeba_root
    message = expected_error(
        lambda: celeba(str(root), attributes=["Male", "Blue_Hair"], split="all"),
        "dataset.attributes",
        "Blue_Hair",
    )
    assert all(name in message for name in CELEBA_ATTRIBUTES)
    expected_error(
        lambda: celeba(str(root), attributes=["Male"], exclusive_groups=[["Male", "Femal"]], split="all"),
        "dataset.exclusive_groups",
        "Femal",
        "Young",
    )
    expected_error(lambda: celeba(str(root), attributes=["Male", "Male"], split="all"), "more than once")


def test_celeba_groups_keep_the_chosen_exclusive_attributes_in_their_order(celeba_root) -> None:
    root, _ = celeba_root

    def groups(attributes, **options) -> list[list[str]]:
        return celeba(str(root), attributes=attributes, split="all", **options).label_groups

    assert groups(["Blond_Hair", "Male", "Black_Hair", "Young"]) == [["Blond_Hair", "Black_Hair"]]
    assert groups(["Black_Hair", "Male"]) == []  # one hair colour alone excludes nothing
    custom = [["Male", "Young"], ["Bald", "Bangs"]]
    assert groups(["Young", "Male", "Bangs"], exclusive_groups=custom) == [["Young", "Male"]]


def test_celeba_split_matches_stargans_shuffle(tmp_path: Path) -> None:
    """StarGAN shuffles the attribute file's data lines with seed 1234; the first 2,000 are the test faces."""
    root = tmp_path / "celeba"
    write_attribute_file(root / "list_attr_celeba.txt", 2010)
    (root / "img_align_celeba").mkdir()
    for number in range(2010):
        (root / "img_align_celeba" / f"{number + 1:06d}.jpg").touch()  # never opened: only names are checked
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()[2:]
    random.Random(1234).shuffle(lines)
    reference = {"test": lines[:2000], "train": lines[2000:]}
    for split, expected in reference.items():
        dataset = celeba(str(root), attributes=["Male"], split=split)
        assert [file.name for file in dataset.files] == [line.split()[0] for line in expected]
        expected_labels = [
            float(line.split()[1 + CELEBA_ATTRIBUTES.index("Male")] == "1") for line in expected
        ]
        assert dataset.labels[:, 0].tolist() == expected_labels
    assert celeba_split(2010, "all") == list(range(2010))
    unlabelled = celeba(str(root), split="train")  # the same shuffle of the sorted files
    assert [file.name for file in unlabelled.files] == [line.split()[0] for line in reference["train"]]


def test_celeba_small_folder_has_an_empty_train_split(celeba_root) -> None:
    root, _ = celeba_root
    expected_error(lambda: celeba(str(root)), "train split", "2000", "dataset.split=all")
    expected_error(lambda: celeba(str(root), split="val"), "dataset.split='val'", "all")
    (root / "img_align_celeba" / "000030.jpg").unlink()
    expected_error(
        lambda: celeba(str(root), attributes=["Male"], split="all"), "000030.jpg", "1 of the 30", "missing"
    )


def test_celeba_flip_mirrors_some_faces_only_when_asked(celeba_root) -> None:
    root, _ = celeba_root

    def left_is_white(dataset) -> list[bool]:
        torch.manual_seed(0)
        return [bool(dataset[0][0][:, :, :8].mean() > 0) for _ in range(16)]

    flipped = left_is_white(celeba(str(root), image_size=16, flip=True, split="all"))
    assert 0 < sum(flipped) < 16
    assert all(left_is_white(celeba(str(root), image_size=16, flip=False, split="all")))
    assert all(left_is_white(celeba(str(root), image_size=16, flip=True, split="test")))


# Domain folders


def decode(image: torch.Tensor) -> tuple[int, int]:
    """(domain, file number) of an image made of grey_level."""
    level = round((float(image.mean()) + 1) * 127.5) - 20
    return level // 40, (level % 40) // 10


def test_balanced_domains_cycle_and_repeat_smaller_ones(domains_root: Path) -> None:
    dataset = DomainFolders(str(domains_root), image_size=12)
    assert dataset.label_names == ["cat", "dog", "wild"]
    assert dataset.label_groups == [] and not dataset.multi_label
    assert len(dataset) == 3 * 3
    items = [dataset[index] for index in range(len(dataset))]
    assert [label for _, label in items] == [0, 1, 2] * 3
    assert [decode(image) for image, _ in items] == [
        (0, 0), (1, 0), (2, 0), (0, 1), (1, 0), (2, 1), (0, 2), (1, 0), (2, 0)
    ]  # fmt: skip
    assert items[0][0].shape == (3, 12, 12) and items[0][0].dtype == torch.float32
    assert dataset.domain_indices() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_unbalanced_domains_list_every_image_once(domains_root: Path) -> None:
    dataset = DomainFolders(str(domains_root), image_size=8, balanced=False)
    assert [decode(image) for image, _ in dataset] == [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1)]
    assert [label for _, label in dataset] == [0, 0, 0, 1, 2, 2]
    assert dataset.domain_indices() == [[0, 1, 2], [3], [4, 5]]


def test_test_split_falls_back_to_val_and_never_augments(domains_root: Path) -> None:
    dataset = DomainFolders(str(domains_root), image_size=8, split="test", random_crop_probability=1.0)
    assert len(dataset) == 3 * 2
    assert [label for _, label in dataset][:3] == [0, 1, 2]
    state = torch.get_rng_state()
    dataset[0]
    assert torch.equal(torch.get_rng_state(), state)


def test_train_split_crops_and_flips_at_random(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (40, 1))
    for name in ("a", "b"):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.fromarray(ramp).save(tmp_path / "train" / name / "ramp.png")

    def outputs(**options) -> set[bytes]:
        dataset = DomainFolders(str(tmp_path), image_size=16, **options)
        torch.manual_seed(0)
        return {dataset[0][0].numpy().tobytes() for _ in range(12)}

    assert len(outputs(flip=True, random_crop_probability=0.0)) == 2
    assert len(outputs(flip=False, random_crop_probability=1.0)) > 6
    assert len(outputs(flip=False, random_crop_probability=0.0)) == 1
    grey = DomainFolders(str(tmp_path), image_size=16, channels=1, flip=False)[0][0]
    assert grey.shape == (1, 16, 16) and grey[0, 0, 0] < grey[0, 0, -1]


def test_domain_folder_errors_explain_the_layout(domains_root: Path, tmp_path: Path) -> None:
    layout = ("train/", "test/", "val/", "afhq/train/cat/", "dataset.path=")
    expected_error(lambda: DomainFolders(None), "dataset.path is unset", *layout)
    expected_error(lambda: DomainFolders(str(tmp_path / "absent")), str(tmp_path / "absent"), *layout)
    (domains_root / "val").rename(domains_root / "elsewhere")
    expected_error(
        lambda: DomainFolders(str(domains_root), split="test"),
        str(domains_root / "test"),
        str(domains_root / "val"),
        *layout,
    )
    (domains_root / "val" / "cat").mkdir(parents=True)
    expected_error(lambda: DomainFolders(str(domains_root), split="test"), "only cat/", "two domain", *layout)
    (domains_root / "val" / "dog").mkdir()
    (domains_root / "val" / "dog" / "notes.txt").write_text("no image")
    expected_error(
        lambda: DomainFolders(str(domains_root), split="test"),
        "differ",
        "cat, dog, wild",
        *layout,
    )
    (domains_root / "val" / "wild").mkdir()
    expected_error(
        lambda: DomainFolders(str(domains_root), split="test"),
        str(domains_root / "val" / "cat"),
        "contains no images",
        *layout,
    )
    expected_error(lambda: DomainFolders(str(domains_root), split="val"), "dataset.split='val'")
    expected_error(lambda: DomainFolders(str(domains_root), random_crop_probability=1.5), "0.5")


# Reference pairs


def test_references_come_from_the_reference_domain(domains_root: Path) -> None:
    dataset = WithReferences(DomainFolders(str(domains_root), image_size=8))
    torch.manual_seed(0)
    reference_labels = set()
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {"image", "label", "reference", "reference_2", "reference_label"}
        assert item["label"].dtype == item["reference_label"].dtype == torch.int64
        assert item["label"] == index % 3
        assert decode(item["reference"])[0] == decode(item["reference_2"])[0] == item["reference_label"]
        reference_labels.add(int(item["reference_label"]))
    assert reference_labels == {0, 1, 2}
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    assert batch["reference"].shape == (4, 3, 8, 8) and batch["reference_label"].shape == (4,)


def test_seeded_references_are_fixed_and_leave_the_global_rng_alone(domains_root: Path) -> None:
    folders = DomainFolders(str(domains_root), image_size=8)  # the train split flips at random
    seeded = WithReferences(folders, seed=3)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = [seeded[index] for index in range(len(seeded))]
    assert torch.equal(torch.get_rng_state(), state)
    again = [seeded[index] for index in range(len(seeded))]
    for one, other in zip(first, again, strict=True):
        assert all(torch.equal(one[key], other[key]) for key in one)
    assert len({int(item["reference_label"]) for item in first}) > 1
    other_seed = [WithReferences(folders, seed=4)[index]["reference"] for index in range(len(seeded))]
    assert any(not torch.equal(a["reference"], b) for a, b in zip(first, other_seed, strict=True))
    unseeded = WithReferences(folders)
    unseeded[0]
    assert not torch.equal(torch.get_rng_state(), state)


def test_references_need_single_label_data() -> None:
    expected_error(
        lambda: WithReferences(ShapesAttributes(num_samples=8)), "one domain per image", "shapes_domains"
    )


# Coloured shapes


def test_shapes_attributes_are_deterministic_and_split() -> None:
    dataset = ShapesAttributes(num_samples=60, seed=5)
    late = dataset[40]
    for index in range(40):
        dataset[index]
    assert torch.equal(dataset[40][0], late[0]) and torch.equal(ShapesAttributes(seed=5)[40][0], late[0])
    assert not torch.equal(ShapesAttributes(seed=6)[40][0], late[0])
    train = {image.numpy().tobytes() for image, _ in dataset}
    test = ShapesAttributes(num_samples=60, seed=5, split="test")
    assert not any(image.numpy().tobytes() in train for image, _ in test)


def test_shapes_attribute_labels_are_colour_and_shape() -> None:
    dataset = ShapesAttributes(num_samples=90)
    assert dataset.multi_label
    assert dataset.label_names == ["red", "green", "blue", "circle", "square", "triangle"]
    assert dataset.label_groups == [["red", "green", "blue"], ["circle", "square", "triangle"]]
    images, labels = (torch.stack(column) for column in zip(*dataset, strict=True))
    assert images.shape == (90, 3, 32, 32) and images.min() == -1 and images.max() <= 1
    assert labels.dtype == torch.float32
    assert (labels[:, :3].sum(1) == 1).all() and (labels[:, 3:].sum(1) == 1).all()  # one colour, one shape
    assert torch.equal(judge(images), labels[:, 3:].argmax(1))
    core_colours = images.flatten(2).amax(dim=2)  # each channel's brightest pixel lies inside the shape
    assert torch.equal(core_colours.argmax(1), labels[:, :3].argmax(1))
    attributes = dataset.attributes(7)
    assert torch.equal(dataset.label_of(attributes["colour_name"], attributes["kind"]), labels[7])
    assert torch.equal(dataset.render(attributes), images[7])
    assert set(labels.argmax(1).tolist()) == {0, 1, 2} and set(labels[:, 3:].argmax(1).tolist()) == {0, 1, 2}


def test_shapes_domain_labels_and_indices() -> None:
    dataset = ShapesAttributes(num_samples=200, labels="domains")
    assert not dataset.multi_label and dataset.label_groups == []
    assert dataset.label_names == list(DOMAIN_NAMES)
    labels = [dataset[index][1] for index in range(200)]
    for index in (0, 50):
        attributes = dataset.attributes(index)
        expected = 3 * COLOUR_NAMES.index(attributes["colour_name"]) + SHAPE_NAMES.index(attributes["kind"])
        assert labels[index] == expected
        assert DOMAIN_NAMES[expected] == f"{attributes['colour_name']}_{attributes['kind']}"
    indices = dataset.domain_indices()
    assert all(labels[index] == domain for domain, members in enumerate(indices) for index in members)
    assert sorted(index for members in indices for index in members) == list(range(200))
    assert all(members for members in indices)
    expected_error(lambda: ShapesAttributes(num_samples=8).domain_indices(), "dataset.labels=domains")
    expected_error(
        lambda: ShapesAttributes(labels="colours"), "dataset.labels='colours'", "attributes", "domains"
    )
    expected_error(lambda: ShapesAttributes(channels=1), "dataset.channels=3")


# Judge


@pytest.fixture(scope="module")
def shapes_and_targets() -> tuple[ShapesAttributes, torch.Tensor, list[str], list[str]]:
    dataset = ShapesAttributes(num_samples=120, split="test", labels="domains")
    rng = np.random.default_rng(0)
    colours = [COLOUR_NAMES[number] for number in rng.integers(3, size=120)]
    shapes = [SHAPE_NAMES[number] for number in rng.integers(3, size=120)]
    return dataset, torch.stack([image for image, _ in dataset]), colours, shapes


def translations(
    dataset: ShapesAttributes, colours: list[str], shapes: list[str], change=dict
) -> torch.Tensor:
    """Each input's ideal translation, the target colour and shape at its centre and size, after ``change``."""
    return torch.stack(
        [
            dataset.render(
                change({**dataset.attributes(index), "kind": kind, "colour": prototype_colour(colour)})
            )
            for index, (colour, kind) in enumerate(zip(colours, shapes, strict=True))
        ]
    )


def test_judge_attributes_on_ground_truth_and_each_mistake(shapes_and_targets) -> None:
    dataset, inputs, colours, shapes = shapes_and_targets
    criteria = ["shape_correct", "colour_correct", "position_kept", "size_kept"]

    def scores(outputs: torch.Tensor, target_colours=colours, target_shapes=shapes) -> dict[str, float]:
        return judge_attributes(inputs, outputs, target_colours, target_shapes)

    def all_but(failed: str) -> dict[str, float]:
        return {**dict.fromkeys(criteria, 1.0), failed: 0.0, "all_kept": 0.0}

    ideal = translations(dataset, colours, shapes)
    assert scores(ideal) == {**dict.fromkeys(criteria, 1.0), "all_kept": 1.0}
    other_colours = [COLOUR_NAMES[(COLOUR_NAMES.index(colour) + 1) % 3] for colour in colours]
    assert scores(ideal, target_colours=other_colours) == all_but("colour_correct")
    other_shapes = [SHAPE_NAMES[(SHAPE_NAMES.index(kind) + 1) % 3] for kind in shapes]
    assert scores(ideal, target_shapes=other_shapes) == all_but("shape_correct")

    def moved(attributes: dict) -> dict:
        x, y = attributes["center"]
        shift = 0.1 * 32
        return {
            **attributes,
            "center": (x + (shift if x < 16 else -shift), y + (shift if y < 16 else -shift)),
        }

    assert scores(translations(dataset, colours, shapes, moved)) == all_but("position_kept")

    def resized(attributes: dict) -> dict:
        return {**attributes, "size": attributes["size"] * (0.85 if attributes["size"] > 17 else 1.15)}

    assert scores(translations(dataset, colours, shapes, resized)) == all_but("size_kept")
    yellow = translations(
        dataset, colours, shapes, lambda attributes: {**attributes, "colour": (220, 220, 9)}
    )
    assert scores(yellow)["colour_correct"] == 0.0
    unrelated = scores(torch.roll(inputs, 1, dims=0))
    assert unrelated["all_kept"] < 0.1 and unrelated["position_kept"] < 0.2
    assert scores(-torch.ones_like(inputs)) == dict.fromkeys([*criteria, "all_kept"], 0.0)


def test_judge_attributes_rejects_bad_input(shapes_and_targets) -> None:
    _, inputs, colours, shapes = shapes_and_targets
    with pytest.raises(ValueError, match="purple"):
        judge_attributes(inputs, inputs, ["purple", *colours[1:]], shapes)
    with pytest.raises(ValueError, match="one target colour and shape per image"):
        judge_attributes(inputs, inputs, colours[:3], shapes)
    with pytest.raises(ValueError, match="batches"):
        judge_attributes(inputs, inputs[:, :1], colours, shapes)
