"""Fixtures that several test files use; plain helpers are in helpers.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import DOMAIN_COUNTS, TRAINING, grey_level, run_entry_point, write_attribute_file
from PIL import Image

import gantrain.cli


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory outside the repository."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The run directory of a tiny model of a family, trained for two steps on first use."""
    root = tmp_path_factory.getbasetemp() / "trained"

    def run(family: str) -> Path:
        directory = root / family
        if not (directory / "checkpoints" / "last.pt").is_file():
            run_entry_point(gantrain.cli.main, *TRAINING[family], "trainer.max_steps=2", "trainer.progress=false",
                            f"hydra.run.dir={directory}")
        return directory

    return run


@pytest.fixture
def celeba_root(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """30 faces, left half white and right half black (so a flip shows), and their attribute table."""
    root = tmp_path / "celeba"
    values = write_attribute_file(root / "list_attr_celeba.txt", 30)
    face = Image.new("RGB", (178, 218), (0, 0, 0))
    face.paste((255, 255, 255), (0, 0, 89, 218))
    (root / "img_align_celeba").mkdir()
    for number in range(30):
        face.save(root / "img_align_celeba" / f"{number + 1:06d}.jpg", quality=100)
    return root, values


@pytest.fixture
def domains_root(tmp_path: Path) -> Path:
    """train/ and val/ with three domains of unequal sizes; each 20x16 image's grey level names it."""
    root = tmp_path / "afhq"
    for split, counts in DOMAIN_COUNTS.items():
        for domain, (name, count) in enumerate(counts.items()):
            for number in range(count):
                folder = root / split / name / ("sub" if number == 2 else "")  # searched recursively
                folder.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (20, 16), (grey_level(domain, number),) * 3).save(folder / f"{number}.png")
    return root
