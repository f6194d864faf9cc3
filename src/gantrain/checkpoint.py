"""Checkpoints: written atomically, read without executing code.

A checkpoint is a plain dict of tensors and primitives: the recipe's state
(networks and schedule counters), the optimizers, the gradient scaler, the step,
the RNG states and the resolved config as YAML text, so that ``torch.load(...,
weights_only=True)`` can read it and both resume and inference need nothing else.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from gantrain.errors import CheckpointError

FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"  # the best evaluation so far, when metrics.best is set
# what torch.load raises for a file that is truncated, corrupt, not a torch file, or holds code
UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, IndexError, ValueError)


def write_atomically(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function that writes to a file) to a temporary file in the same folder,
    flush it to disk, then rename it into place.

    A crash at any moment leaves either the previous file or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            if isinstance(data, bytes):
                file.write(data)
            else:
                data(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:  # a full disk, a read-only folder, Ctrl-C: leave no half-written file behind
        temporary.unlink(missing_ok=True)


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """The state, with the format version, written atomically (:func:`write_atomically`)."""
    write_atomically(path, lambda file: torch.save({"format_version": FORMAT_VERSION, **state}, file))


def keep_copy(path: Path, copy: Path) -> None:
    """Keep the current checkpoint under a second name (a hard link: no extra disk space)."""
    copy.unlink(missing_ok=True)
    try:
        os.link(path, copy)
    except OSError:
        copy.write_bytes(path.read_bytes())


def prune_kept(folder: Path, keep_last: int, keep_every: int) -> list[Path]:
    """Delete the periodic ``step_<n>.pt`` copies except the last ``keep_last`` and every ``keep_every``-th step
    (0: none); ``last.pt`` and ``best.pt`` are never touched.  Returns what was deleted."""
    kept = sorted(folder.glob("step_*.pt"))
    deleted = []
    for path in kept[: max(len(kept) - keep_last, 0)]:
        step = int(path.stem.removeprefix("step_"))
        if not (keep_every and step % keep_every == 0):
            path.unlink(missing_ok=True)
            deleted.append(path)
    return deleted


def find_checkpoint(location: str | os.PathLike, key: str = "resume") -> Path:
    """A checkpoint file, or ``checkpoints/last.pt`` inside a run directory; ``key`` is the setting that
    named it, for the message when there is none."""
    path = Path(location).expanduser()
    if path.is_dir():
        path = path / CHECKPOINT_DIR / LAST
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Pass a checkpoint file or a run directory that holds "
            f"{CHECKPOINT_DIR}/{LAST} (for example {key}=outputs/dcgan/shapes/2026-01-01_12-00-00)."
        )
    return path


def load_checkpoint(location: str | os.PathLike, key: str = "resume", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint onto the CPU without running any code stored in it (``key``: the setting that named it).

    ``mmap``: map the tensors instead of reading them, for a caller that needs only the plain values.
    """
    path = find_checkpoint(location, key)
    if not zipfile.is_zipfile(path):  # torch.save has written zip archives since PyTorch 1.6
        raise CheckpointError(
            f"Cannot read checkpoint {path}: the file is truncated or corrupt (not a PyTorch archive). "
            f"Use an earlier checkpoint from the same {CHECKPOINT_DIR}/ folder."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"Refusing to load {path}: it holds objects other than tensors and plain values, "
            f"so it was not written by gantrain and loading it could run code ({error})."
        ) from None
    except UNREADABLE as error:
        raise CheckpointError(
            f"Cannot read checkpoint {path}: the file is truncated or corrupt ({error}). "
            f"Use an earlier checkpoint from the same {CHECKPOINT_DIR}/ folder."
        ) from None
    version = state.get("format_version") if isinstance(state, dict) else None
    if version is None:
        raise CheckpointError(f"{path} is not a gantrain checkpoint (no format_version).")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer gantrain (checkpoint format {version}, this one reads up to "
            f"{FORMAT_VERSION}): upgrade gantrain to load it."
        )
    return state
