"""Typed schemas for the composed config, and the rule that keeps each default in one place.

Hydra validates the composed YAML against these dataclasses, so a misspelt key
(``trainer.max_stpes=5``) or a wrong type (``trainer.max_steps=abc``) stops the
run at start-up, before any work is done.

Where each value lives:

- run-level settings (``trainer.*``, ``device.*``, ``metrics.*``, each command's own
  keys): the defaults of the dataclasses below; no YAML repeats them.
- a config group option (``model/*.yaml``, ``optimizer/*.yaml``, ``dataset/*.yaml``):
  its YAML file names the ``_target_`` and holds the values.  A model's schema is not
  written anywhere: :func:`model_schema` derives it from the recipe constructor's
  keyword arguments (types, no defaults), so a new family is its recipe module, its
  networks and its YAML.  Optimizer and dataset schemas below give types, and defaults
  only for the keys that most options leave alone (``tests/test_config.py`` checks
  that a YAML never repeats one of them and that a dataset class's own keyword
  defaults agree).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import MISSING

from gantrain.options import (
    BadFilePolicy,
    DeviceType,
    Direction,
    ExportFormat,
    FeatureNetwork,
    LabelKind,
    NonFiniteCheck,
    NonFinitePolicy,
    Precision,
    Preprocess,
)


@dataclass
class TrainerConfig:
    # the run's length: the first reached of max_steps and max_epochs (len(dataset) // batch_size steps each);
    # a limit typed on the command line replaces the other kind that a config file brought
    max_steps: int | None = 2000
    max_epochs: int | None = None
    batch_size: int = 64  # per process: torchrun with N processes trains on N x batch_size images a step
    num_workers: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    # periodic checkpoints (step_<n>.pt) kept: the last K, plus every M-th step (0: none); last.pt, best.pt always
    keep_checkpoints: int = 5
    keep_checkpoints_every: int = 0
    num_samples: int = 64  # images in the fixed-noise sample grid
    eval_every: int = 0  # steps between evaluations with the metrics config (0: never)
    on_nan: NonFinitePolicy = NonFinitePolicy.stop  # a NaN / Inf loss: no update is ever applied from one
    nan_check: NonFiniteCheck = NonFiniteCheck.auto  # how: a host read per update, or device-side and read when logging
    bad_files: BadFilePolicy = BadFilePolicy.fail  # corrupt, truncated or non-image files in the data
    progress: bool = True
    # under torchrun: BatchNorm statistics over all processes' batches (CUDA only)
    sync_batchnorm: bool = False
    # a folder: every process appends a SHA-256 of its parameters after each step (checks DDP replicas)
    weight_digests: str | None = None


@dataclass
class DeviceConfig:
    """Where and how fast: the defaults are the fast path wherever it measured safe and faster."""

    type: DeviceType = DeviceType.auto
    precision: Precision = Precision.auto  # the measured faster: bf16 on CPUs with native bf16 and for captured CUDA steps, else fp32
    # torch.compile the networks that are never differentiated twice; null: compile_faster_on decides
    compile: bool | None = None
    # device types on which this model measured faster compiled (scripts/bench.py; the model config says by how much)
    compile_faster_on: list[DeviceType] = field(default_factory=list)
    compile_backend: str = "inductor"  # torch.compile's backend; aot_eager checks graph capture without codegen
    channels_last: bool | None = None  # null: channels_last_faster_on decides
    # device types on which this model's networks measured faster in channels_last
    # (scripts/bench.py); each model config records its own measurement
    channels_last_faster_on: list[DeviceType] = field(default_factory=list)
    cudnn_benchmark: bool = True  # let cuDNN time its algorithms once per shape (CUDA; shapes are static)
    # capture each update pattern of the training step in a CUDA graph and replay it: auto (one CUDA device,
    # where the run allows it; the start-up log says why not), true (refuse to start where it cannot), false
    cuda_graphs: str = "auto"


@dataclass
class MetricsConfig:
    """What ``trainer.eval_every`` and ``gantrain-eval`` measure on the held-out data."""

    task: bool = True  # weight-free task metrics: shapes judges, L1 / PSNR / SSIM, classifier accuracy
    task_images: int = 256
    fid: bool = False  # FID and KID (torchmetrics)
    features: FeatureNetwork = FeatureNetwork.inception
    inception_weights: str | None = None  # a local pt_inception-2015-12-05 file; else the download
    num_images: int = 2000  # generated and real images for FID / KID
    lpips_weights: str | None = None  # StarGAN v2 diversity: a local LPIPS backbone weights file
    best: str | None = None  # the metric that picks checkpoints/best.pt and that the run returns


@dataclass
class DatasetConfig:
    _target_: str = MISSING
    path: str | None = None
    image_size: int = MISSING
    channels: int = 3
    download: bool = False
    # decode every image once and keep it as uint8; crop / flip / normalise whole batches on the device
    # (folder, celeba, CycleGAN / pix2pix folders with preprocess=resize_and_crop, the embedded shapes);
    # auto: when the images fit within half the available memory (data/in_memory.py), with the figures in the log
    in_memory: bool | str = "auto"


@dataclass
class ShapesConfig(DatasetConfig):
    num_samples: int = MISSING
    seed: int = 0  # the data's own seed: the images do not change with the run's seed


@dataclass
class TranslationDatasetConfig(DatasetConfig):
    """A/B datasets: folders in the official layouts."""

    split: str = "train"
    load_size: int = MISSING
    preprocess: Preprocess = Preprocess.resize_and_crop
    flip: bool = True
    name: str | None = None  # an official dataset name: downloaded into path's parent when missing


@dataclass
class ShapesTranslationConfig(ShapesConfig):
    """The embedded A/B shapes."""

    split: str = "train"


@dataclass
class ShapesAttributesConfig(ShapesTranslationConfig):
    labels: LabelKind = MISSING


@dataclass
class CelebAConfig(DatasetConfig):
    """Aligned CelebA; with ``attributes`` each image is labelled by those of the 40 attributes."""

    attributes: list[str] = field(default_factory=list)  # empty: unlabelled faces (DCGAN)
    # attributes of which a face has at most one: set one-hot when translating to one of them
    exclusive_groups: list[list[str]] = MISSING
    split: str = "train"  # train, test (StarGAN's 2,000 held-out faces) or all
    flip: bool = False


@dataclass
class DomainsConfig(DatasetConfig):
    """One folder per domain under ``path/<split>/`` (afhq, celeba_hq, RaFD)."""

    split: str = "train"  # train or test (``val`` is used when there is no ``test`` folder)
    flip: bool = True
    # probability of a random 80-100% crop (aspect 0.9-1.1) before resizing, StarGAN v2's augmentation
    random_crop_probability: float = 0.0
    balanced: bool = True  # every domain as often as the largest one in each epoch


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = MISSING
    betas: tuple[float, float] = MISSING
    # added to the root of the squared-gradient average: above a weight's gradient scale, its steps shrink
    eps: float = 1e-8
    # L2 penalty added to the gradient (torch.optim.Adam's, not AdamW's decoupled decay): Adam divides
    # it by the gradient's scale, so it pulls the weights that get almost no gradient towards zero
    weight_decay: float = 0.0
    # one fused kernel per update instead of a loop of per-tensor ops: the same update rule, faster
    fused: bool | None = True


@dataclass
class RMSpropConfig:
    _target_: str = "torch.optim.RMSprop"
    _partial_: bool = True
    lr: float = MISSING
    alpha: float = 0.99
    weight_decay: float = 0.0


INJECTED = ("image_shape", "make_optimizer")
"""Recipe constructor arguments that come from the dataset and the optimizer config, not from ``model.*``."""


@functools.cache
def model_schema(target: str) -> type:
    """The structured config of a recipe: its constructor's keyword-only arguments, typed, without defaults.

    Deriving it keeps the types where the values are used and the values in the YAML;
    no family needs a schema written for it.
    """
    recipe = get_object(target)
    constructor = recipe.__init__ if inspect.isclass(recipe) else recipe
    hints = typing.get_type_hints(constructor)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [("_target_", str)]
    for name, parameter in inspect.signature(constructor).parameters.items():
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in INJECTED:
            hint = hints[name]
            # a structured value (the labels a multi-domain model is built for) is filled in at start-up
            default = field(default_factory=hint) if dataclasses.is_dataclass(hint) else field(default=MISSING)
            fields.append((name, hint, default))
    return make_dataclass(f"{recipe.__name__}Config", fields)


@dataclass
class PathsConfig:
    # where the datasets live: $GANTRAIN_DATA, else data/ in the working directory (gantrain-data uses the same)
    data_dir: str = "${oc.env:GANTRAIN_DATA,data}"


@dataclass
class TrainConfig:
    # each option of these groups brings its own schema through its defaults list (models: model_schema)
    model: Any = MISSING
    dataset: Any = MISSING
    optimizer: Any = MISSING
    device: DeviceConfig = field(default_factory=DeviceConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    resume: str | None = None
    # resume with other model / dataset / optimizer values than the checkpoint's (trainer.*,
    # device.* and metrics.* may always change)
    resume_allow_changes: bool = False
    init_from: str | None = None  # a trained or imported run whose network weights this run starts from


@dataclass
class SampleConfig:
    checkpoint: str = MISSING
    output: str = "samples"
    num_samples: int = 64
    seed: int = 0
    device: DeviceConfig = field(default_factory=DeviceConfig)  # the same group as training: device=cpu


@dataclass
class TranslateConfig:
    checkpoint: str = MISSING
    input: str = MISSING  # an image file or a folder (searched recursively)
    output: str = "translated"
    direction: Direction = Direction.AtoB  # CycleGAN and pix2pix
    # StarGAN: attribute names to switch on ("-Name" switches one off), or a domain;
    # StarGAN v2: the target domain
    target: str | None = None
    reference: str | None = None  # StarGAN v2: an image or folder whose styles are copied
    num_styles: int = 1  # StarGAN v2 without references: random styles per input
    seed: int = 0  # for the random styles
    side_by_side: bool = False  # also write input | output images
    batch_size: int = 8  # images of the same size are translated together
    device: DeviceConfig = field(default_factory=DeviceConfig)


@dataclass
class EvalConfig:
    checkpoint: str = MISSING
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # replacements for the stored dataset config, e.g. dataset.path=/data/horse2zebra
    dataset: dict[str, Any] = field(default_factory=dict)
    split: str = "test"  # where the dataset has splits
    output: str | None = None  # the JSON report; default: eval_<checkpoint>.json beside the checkpoint
    device: DeviceConfig = field(default_factory=DeviceConfig)


@dataclass
class ExportConfig:
    checkpoint: str = MISSING  # a checkpoint file or a run directory
    output: str = MISSING  # the file to write
    format: ExportFormat = ExportFormat.onnx
    part: str = "generator"  # which network, where the model has several (StarGAN v2: mapping, style_encoder)
    # CycleGAN: which generator (AtoB when unset); pix2pix: the direction it was trained in
    direction: Direction | None = None
    device: DeviceConfig = field(default_factory=DeviceConfig)  # export.yaml picks device=cpu


@dataclass
class ImportConfig:
    source: str = MISSING  # the model= option the weights are for: cyclegan, pix2pix, stargan or stargan_v2
    weights: str = MISSING  # an official weights file, or the folder that holds a release's or a run's files
    output: str = MISSING  # the run directory to write (checkpoints/last.pt)
    # the dataset= option stored with the run (a key of its own: dataset= is the training config group); default: the
    # one the weights' release was trained on
    dataset_option: str | None = None
    # the direction a lone generator translates (a published CycleGAN model, pix2pix); default: the release's
    direction: Direction | None = None
    labels: list[str] | None = None  # StarGAN, StarGAN v2: attribute or domain names in the weights' order
    image_size: int | None = None  # where the weights leave it open (fully convolutional generators)
    # model settings that the weights cannot show, e.g. model.use_dropout=false for a pix2pix run without dropout
    model: dict[str, Any] = field(default_factory=dict)


def register_configs() -> None:
    """Make the schemas available to the YAML files' defaults lists."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="sample_schema", node=SampleConfig)
    store.store(name="translate_schema", node=TranslateConfig)
    store.store(name="eval_schema", node=EvalConfig)
    store.store(name="export_schema", node=ExportConfig)
    store.store(name="import_schema", node=ImportConfig)
    store.store(group="trainer", name="schema", node=TrainerConfig)
    store.store(group="device", name="schema", node=DeviceConfig)
    store.store(group="dataset", name="schema", node=DatasetConfig)
    store.store(group="dataset", name="shapes_schema", node=ShapesConfig)
    store.store(group="dataset", name="translation_schema", node=TranslationDatasetConfig)
    store.store(group="dataset", name="shapes_translation_schema", node=ShapesTranslationConfig)
    store.store(group="dataset", name="celeba_schema", node=CelebAConfig)
    store.store(group="dataset", name="domains_schema", node=DomainsConfig)
    store.store(group="dataset", name="shapes_attributes_schema", node=ShapesAttributesConfig)
    store.store(group="optimizer", name="adam_schema", node=AdamConfig)
    store.store(group="optimizer", name="rmsprop_schema", node=RMSpropConfig)
