"""Target labels of StarGAN and StarGAN v2: training permutations, sample-grid targets, named targets."""

from __future__ import annotations

import pytest
import torch

from gantrain.errors import ConfigError
from gantrain.labels import LabelSpec

CELEBA = LabelSpec(
    names=["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"],
    groups=[["Black_Hair", "Blond_Hair", "Brown_Hair"]],
)
ANIMALS = LabelSpec(names=["cat", "dog", "wild"], multi_label=False)


def test_training_targets_are_a_permutation_of_the_batch_labels():
    labels = torch.eye(5)
    torch.manual_seed(0)
    shuffled = CELEBA.shuffled(labels)
    assert not torch.equal(shuffled, labels)
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, labels.tolist()))
    torch.manual_seed(0)
    assert torch.equal(CELEBA.shuffled(labels), shuffled)  # drawn from the global RNG the checkpoint keeps


def test_domain_labels_condition_as_one_hot():
    assert torch.equal(ANIMALS.condition(torch.tensor([2, 0])), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    attributes = torch.tensor([[1.0, 0, 0, 1, 0]])
    assert torch.equal(CELEBA.condition(attributes), attributes)


def test_one_change_targets_set_groups_one_hot_and_flip_the_rest():
    # a young, black-haired woman
    labels = torch.tensor([[1.0, 0, 0, 0, 1]])
    targets = [t[0].tolist() for t in CELEBA.one_change_targets(labels)]
    assert targets == [
        [1, 0, 0, 0, 1],  # black hair: already
        [0, 1, 0, 0, 1],  # blond: the other hair colours off
        [0, 0, 1, 0, 1],  # brown
        [1, 0, 0, 1, 1],  # Male flipped on
        [1, 0, 0, 0, 0],  # Young flipped off
    ]
    assert [t.tolist() for t in ANIMALS.one_change_targets(torch.tensor([0, 2]))] == [[0, 0], [1, 1], [2, 2]]


def test_named_targets_keep_what_is_not_named():
    current = torch.tensor([[1.0, 0, 0, 1, 0]])  # black-haired old man
    assert CELEBA.named_target(["Blond_Hair", "Young"], current)[0].tolist() == [0, 1, 0, 1, 1]
    assert CELEBA.named_target(["-Male"], current)[0].tolist() == [1, 0, 0, 0, 0]
    assert ANIMALS.named_target(["wild"], torch.tensor([0, 1])).tolist() == [2, 2]


@pytest.mark.parametrize(
    ("spec", "request_", "expected"),
    [
        (CELEBA, ["Purple_Hair"], "Black_Hair, Blond_Hair, Brown_Hair, Male, Young"),
        (ANIMALS, ["dog", "cat"], "choose one of cat, dog, wild"),
        (ANIMALS, ["bird"], "choose one of cat, dog, wild"),
    ],
)
def test_unknown_targets_list_the_valid_names(spec, request_, expected):
    with pytest.raises(ConfigError, match=expected):
        spec.named_target(request_, torch.zeros(1, spec.size) if spec.multi_label else torch.zeros(1))


def test_groups_must_name_labels():
    with pytest.raises(ConfigError, match="Gray_Hair"):
        LabelSpec(names=["Black_Hair", "Male"], groups=[["Black_Hair", "Gray_Hair"]])
