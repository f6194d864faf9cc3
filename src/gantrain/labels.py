"""Target labels of the multi-domain models (StarGAN, StarGAN v2).

A dataset labels each image either with several binary attributes (CelebA's
hair colour, sex, age: a multi-hot vector) or with exactly one domain (AFHQ's
cat / dog / wild: an integer).  :class:`LabelSpec` holds the names, the groups
of mutually exclusive attributes, and how to build targets from them, so no
recipe or command hard-codes an attribute's position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from gantrain.errors import ConfigError

NEGATION = "-"
"""Prefix that turns an attribute off in a named target (``-Male``)."""


@dataclass
class LabelsConfig:
    """The label layout a multi-domain model was trained with, as its config stores it (``model.labels``).

    Filled in from the dataset at start-up, so the stored config rebuilds the same networks
    for resume and inference without the data.
    """

    names: list[str] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)  # mutually exclusive attributes
    multi_label: bool = True  # attributes (multi-hot) rather than one domain per image


@dataclass(frozen=True)
class LabelSpec:
    names: list[str]
    groups: list[list[str]] = field(default_factory=list)
    multi_label: bool = True

    def __post_init__(self) -> None:
        if len(self.names) < 2 and not self.multi_label:
            raise ConfigError(f"A domain dataset needs at least two domains, got {self.names}.")
        if not self.names:
            raise ConfigError("The dataset has no labels: a multi-domain model needs attributes or domains.")
        unknown = sorted({name for group in self.groups for name in group} - set(self.names))
        if unknown:
            raise ConfigError(
                f"Exclusive groups name {unknown}, which are not among the labels {self.names}."
            )

    @property
    def size(self) -> int:
        return len(self.names)

    def condition(self, labels: torch.Tensor) -> torch.Tensor:
        """The float N x size vector a generator is conditioned on: one-hot for domain labels."""
        if self.multi_label:
            return labels.float()
        # compared with every index rather than F.one_hot, which checks the labels' range on the host
        return (labels.long().unsqueeze(1) == torch.arange(self.size, device=labels.device)).float()

    def shuffled(self, labels: torch.Tensor) -> torch.Tensor:
        """Training targets: the batch's own labels in a random order, drawn on the labels' device (from its
        global generator, which the checkpoint keeps; inside a captured CUDA graph, a fresh order each replay)."""
        return labels[torch.randperm(labels.size(0), device=labels.device)]

    def one_change_targets(self, labels: torch.Tensor) -> list[torch.Tensor]:
        """One target per label name, changing only that label: the columns of StarGAN's sample grid.

        For attributes, a member of an exclusive group is switched on and the rest of
        its group off (black -> blond hair); any other attribute is flipped (male <->
        female).  For domains, every image is sent to that domain.
        """
        if not self.multi_label:
            return [torch.full_like(labels, index) for index in range(self.size)]
        targets = []
        for index, name in enumerate(self.names):
            target = labels.clone()
            group = self._group_indices(name)
            if group:
                target[:, group] = 0
                target[:, index] = 1
            else:
                target[:, index] = 1 - target[:, index]
            targets.append(target)
        return targets

    def named_target(self, request: Iterable[str], current: torch.Tensor) -> torch.Tensor:
        """Labels for a request such as ``["Blond_Hair", "Young"]`` or ``["-Male"]``, applied to ``current``.

        Named attributes are switched on (their exclusive group off) or, with a
        leading ``-``, off; the others keep the values in ``current`` (the labels the
        images are believed to have).  For domains, exactly one name is the target.
        """
        request = [name.strip() for name in request if name.strip()]
        if not self.multi_label:
            if len(request) != 1 or request[0] not in self.names:
                raise ConfigError(
                    f"target={','.join(request) or '(empty)'} is not one of the model's domains: "
                    f"choose one of {', '.join(self.names)} (e.g. target={self.names[-1]})."
                )
            return torch.full_like(current, self.names.index(request[0]))
        target = current.clone().float()
        for entry in request:
            name = entry.removeprefix(NEGATION)
            if name not in self.names:
                raise ConfigError(
                    f"target names '{name}', which the model was not trained on: choose among "
                    f"{', '.join(self.names)}, separated by commas, with a leading '-' to turn one off "
                    f"(e.g. target={self.names[0]},{NEGATION}{self.names[-1]})."
                )
            index = self.names.index(name)
            if entry.startswith(NEGATION):
                target[:, index] = 0
                continue
            target[:, self._group_indices(name)] = 0
            target[:, index] = 1
        return target

    def _group_indices(self, name: str) -> list[int]:
        for group in self.groups:
            if name in group:
                return [self.names.index(member) for member in group]
        return []


def label_spec(labels: LabelsConfig | dict) -> LabelSpec:
    """A LabelSpec from the stored label layout (a dataclass, or the dict OmegaConf makes of it)."""
    if isinstance(labels, dict):
        labels = LabelsConfig(**labels)
    return LabelSpec(list(labels.names), [list(group) for group in labels.groups], bool(labels.multi_label))
