"""Typed schemas for every config group.

Hydra validates the composed YAML against these dataclasses, so a misspelt key
(``trainer.max_stpes=5``) or a wrong type (``trainer.max_steps=abc``) stops the
run at start-up with Hydra's own message, before any work is done.  The YAML
files under ``configs/`` pick a schema in their defaults list and fill in values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class DeviceType(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, Enum):
    auto = "auto"  # bf16 where the device computes it natively, else fp32
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class NonFinitePolicy(str, Enum):
    stop = "stop"  # stop with a message; the last checkpoint stays the last good state
    skip = "skip"  # drop that update (counted in TensorBoard as health/skipped_updates) and go on


class NonFiniteCheck(str, Enum):
    auto = "auto"  # deferred on a single CUDA device when every optimizer is fused Adam and no fp16 scaler runs; else update
    update = "update"  # the host reads each loss before its update: one device sync per update, the exact step at once
    deferred = "deferred"  # fused Adam skips a non-finite update on the device; the host reads the flags when it logs or saves


class BadFilePolicy(str, Enum):
    fail = "fail"  # stop, naming the file
    skip = "skip"  # use the next good item instead, warn with the file name, count in data/skipped_files


class GeneratorLoss(str, Enum):
    """Generator objective of the original GAN (Goodfellow et al. 2014)."""

    non_saturating = "non_saturating"  # maximise log D(G(z)); what everybody trains with
    minimax = "minimax"  # minimise log(1 - D(G(z))); saturates early, kept to show why


class AdversarialLoss(str, Enum):
    """The adversarial objective of the image-to-image models (pix2pix/CycleGAN's ``gan_mode``)."""

    lsgan = "lsgan"  # least squares (Mao et al. 2017): CycleGAN's default
    vanilla = "vanilla"  # binary cross-entropy: pix2pix's default
    wgangp = "wgangp"  # Wasserstein with a gradient penalty on the discriminator


class Norm(str, Enum):
    batch = "batch"
    layer = "layer"  # GroupNorm(1, C): per-sample, safe with the gradient penalty
    none = "none"


@dataclass
class TrainerConfig:
    max_steps: int = 2000
    max_epochs: int | None = None  # when set, replaces max_steps (epochs: len(dataset) // batch_size steps)
    batch_size: int = 64  # per process: torchrun with N processes trains on N x batch_size images a step
    num_workers: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
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
    precision: Precision = Precision.auto  # the measured faster: bf16 on CPUs with native bf16, else fp32
    compile: bool = False  # torch.compile the networks that are never differentiated twice
    compile_backend: str = "inductor"  # torch.compile's backend; aot_eager checks graph capture without codegen
    channels_last: bool | None = None  # null: channels_last_faster_on decides
    # device types on which this model's networks measured faster in channels_last
    # (scripts/bench.py); each model config records its own measurement
    channels_last_faster_on: list[DeviceType] = field(default_factory=list)
    cudnn_benchmark: bool = True  # let cuDNN time its algorithms once per shape (CUDA; shapes are static)


class FeatureNetwork(str, Enum):
    inception = "inception"  # the standard FID / KID network (weights file or download)
    random = "random"  # a seeded untrained network: offline, ranks runs, not comparable with papers


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
    image_size: int = 32
    channels: int = 3
    download: bool = False
    # decode every image once and keep it as uint8; crop / flip / normalise whole batches on the device
    # (folder, celeba, CycleGAN / pix2pix folders with preprocess=resize_and_crop, the embedded shapes)
    in_memory: bool = False


@dataclass
class ShapesConfig(DatasetConfig):
    _target_: str = "gantrain.data.shapes.ShapesDataset"
    num_samples: int = 60000
    seed: int = 0  # the data's own seed: the images do not change with the run's seed


class Preprocess(str, Enum):
    """How translation datasets resize and crop, as in pix2pix/CycleGAN's ``--preprocess``."""

    resize_and_crop = "resize_and_crop"  # resize to load_size, random crop image_size
    crop = "crop"  # random crop image_size
    scale_width = "scale_width"  # width to image_size, aspect kept
    scale_width_and_crop = "scale_width_and_crop"  # width to load_size, random crop image_size
    none = "none"  # sides rounded to multiples of 4


@dataclass
class TranslationDatasetConfig(DatasetConfig):
    """A/B datasets: folders in the official layouts, or the embedded shapes pairs."""

    image_size: int = 256
    split: str = "train"
    load_size: int = 286
    preprocess: Preprocess = Preprocess.resize_and_crop
    flip: bool = True
    name: str | None = None  # an official dataset name: downloaded into path's parent when missing


@dataclass
class ShapesTranslationConfig(DatasetConfig):
    image_size: int = 32
    split: str = "train"
    num_samples: int = 20000
    seed: int = 0


CELEBA_DEFAULT_ATTRIBUTES = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]  # StarGAN's choice
CELEBA_HAIR_COLOURS = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]


@dataclass
class CelebAConfig(DatasetConfig):
    """Aligned CelebA; with ``attributes`` each image is labelled by those of the 40 attributes."""

    _target_: str = "gantrain.data.images.celeba"
    image_size: int = 64
    attributes: list[str] = field(default_factory=list)  # empty: unlabelled faces (DCGAN)
    # attributes of which a face has at most one: set one-hot when translating to one of them
    exclusive_groups: list[list[str]] = field(default_factory=lambda: [list(CELEBA_HAIR_COLOURS)])
    split: str = "train"  # train, test (StarGAN's 2,000 held-out faces) or all
    flip: bool = False


@dataclass
class DomainsConfig(DatasetConfig):
    """One folder per domain under ``path/<split>/`` (afhq, celeba_hq, RaFD)."""

    _target_: str = "gantrain.data.domains.DomainFolders"
    image_size: int = 256
    split: str = "train"  # train or test (``val`` is used when there is no ``test`` folder)
    flip: bool = True
    # probability of a random 80-100% crop (aspect 0.9-1.1) before resizing, StarGAN v2's augmentation
    random_crop_probability: float = 0.0
    balanced: bool = True  # every domain as often as the largest one in each epoch


class LabelKind(str, Enum):
    attributes = "attributes"  # several binary attributes per image (multi-hot label)
    domains = "domains"  # exactly one domain per image (integer label)


@dataclass
class ShapesAttributesConfig(ShapesTranslationConfig):
    _target_: str = "gantrain.data.shapes_attributes.ShapesAttributes"
    labels: LabelKind = LabelKind.attributes


@dataclass
class AdamConfig:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    # one fused kernel per update instead of a loop of per-tensor ops: the same update rule, faster
    fused: bool | None = True


@dataclass
class RMSpropConfig:
    _target_: str = "torch.optim.RMSprop"
    _partial_: bool = True
    lr: float = 5e-5
    alpha: float = 0.99
    weight_decay: float = 0.0


@dataclass
class NoiseModelConfig:
    """Settings shared by the families that generate from noise."""

    _target_: str = MISSING
    nz: int = 100
    # Samples and checkpoints' inference use an exponential moving average of the
    # generator's weights with this decay (0 disables it); it smooths out the
    # step-to-step jitter of GAN training.
    ema_decay: float = 0.0


@dataclass
class GANModelConfig(NoiseModelConfig):
    _target_: str = "gantrain.recipes.gan.mlp_gan"
    g_hidden: list[int] = field(default_factory=lambda: [1200, 1200])
    d_hidden: list[int] = field(default_factory=lambda: [512, 256])
    g_loss: GeneratorLoss = GeneratorLoss.non_saturating


@dataclass
class ConvModelConfig(NoiseModelConfig):
    """DCGAN-style networks: ``ngf`` / ``ndf`` are the widths at full resolution."""

    ngf: int = 64
    ndf: int = 64


@dataclass
class DCGANModelConfig(ConvModelConfig):
    _target_: str = "gantrain.recipes.dcgan.dcgan"
    g_loss: GeneratorLoss = GeneratorLoss.non_saturating


@dataclass
class WGANModelConfig(ConvModelConfig):
    _target_: str = "gantrain.recipes.wgan.WGAN"
    critic_norm: Norm = Norm.batch
    n_critic: int = 5
    # The reference code trains the critic 100 times per generator step while the
    # generator has taken fewer than ``warmup_generator_steps`` steps, and on every
    # ``long_critic_every``-th generator step (0 disables both).
    long_critic_iterations: int = 100
    warmup_generator_steps: int = 25
    long_critic_every: int = 500
    clip_value: float = 0.01


@dataclass
class WGANGPModelConfig(ConvModelConfig):
    _target_: str = "gantrain.recipes.wgan_gp.WGANGP"
    critic_norm: Norm = Norm.layer
    n_critic: int = 5
    gp_weight: float = 10.0


class TranslationNorm(str, Enum):
    instance = "instance"
    batch = "batch"
    none = "none"


class StarGANNorm(str, Enum):
    instance = "instance"  # the reference's
    batch = "batch"


class PatchDiscriminatorKind(str, Enum):
    basic = "basic"  # the 70x70 PatchGAN (3 layers)
    n_layers = "n_layers"  # a PatchGAN with model.n_layers_d layers
    pixel = "pixel"  # 1x1 PatchGAN: judges colour statistics only


class UnetKind(str, Enum):
    """U-Net generators by the image size they reduce to 1x1 (log2(size) downsamplings)."""

    unet_256 = "unet_256"
    unet_128 = "unet_128"
    unet_64 = "unet_64"
    unet_32 = "unet_32"


class Direction(str, Enum):
    AtoB = "AtoB"
    BtoA = "BtoA"


@dataclass
class TranslationModelConfig:
    """Settings shared by CycleGAN and pix2pix (junyanz/pytorch-CycleGAN-and-pix2pix)."""

    _target_: str = MISSING
    ngf: int = 64
    ndf: int = 64
    discriminator: PatchDiscriminatorKind = PatchDiscriminatorKind.basic
    n_layers_d: int = 3
    norm: TranslationNorm = TranslationNorm.instance
    gan_loss: AdversarialLoss = AdversarialLoss.lsgan
    gp_weight: float = 10.0  # only with gan_loss=wgangp
    n_epochs: int = 100  # epochs at the initial learning rate ...
    n_epochs_decay: int = 100  # ... then epochs of linear decay to zero


@dataclass
class CycleGANModelConfig(TranslationModelConfig):
    _target_: str = "gantrain.recipes.cyclegan.CycleGAN"
    n_blocks: int = 9  # residual blocks: 9 for 256x256 images, 6 for 128x128
    use_dropout: bool = False
    lambda_a: float = 10.0  # cycle A -> B -> A
    lambda_b: float = 10.0  # cycle B -> A -> B
    lambda_identity: float = 0.5  # times lambda_a / lambda_b
    pool_size: int = 50


@dataclass
class Pix2PixModelConfig(TranslationModelConfig):
    _target_: str = "gantrain.recipes.pix2pix.Pix2Pix"
    generator: UnetKind = UnetKind.unet_256
    norm: TranslationNorm = TranslationNorm.batch
    gan_loss: AdversarialLoss = AdversarialLoss.vanilla
    use_dropout: bool = True  # kept on at inference: the paper's noise
    lambda_l1: float = 100.0
    direction: Direction = Direction.AtoB


@dataclass
class LabelsConfig:
    """The label layout a multi-domain model was trained with; filled in from the dataset at start-up."""

    names: list[str] = field(default_factory=list)
    groups: list[list[str]] = field(default_factory=list)  # mutually exclusive attributes
    multi_label: bool = True  # attributes (multi-hot) rather than one domain per image


@dataclass
class StarGANModelConfig:
    """StarGAN (Choi et al. 2018; yunjey/stargan)."""

    _target_: str = "gantrain.recipes.stargan.StarGAN"
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 6  # generator residual blocks
    norm: StarGANNorm = StarGANNorm.instance  # generator normalisation
    d_layers: int = 6  # discriminator stride-2 convolutions: image_size / 2**d_layers is the last map
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_gp: float = 10.0
    lambda_identity: float = 0.0  # L1(G(x, c_org), x); not in the paper, off by default
    n_critic: int = 5  # discriminator steps per generator step
    n_steps: int = 100000  # steps at the initial learning rate ...
    n_steps_decay: int = 100000  # ... then steps of linear decay to zero
    ema_decay: float = 0.0  # >0: an averaged generator translates outside training (not in the paper)


@dataclass
class StarGANv2ModelConfig:
    """StarGAN v2 (Choi et al. 2020), built from the paper."""

    _target_: str = "gantrain.recipes.stargan_v2.StarGANv2"
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    latent_dim: int = 16
    style_dim: int = 64
    mapping_width: int = 512
    base_width: int | None = None  # widest layers' start: 2**14 / image_size when unset
    max_width: int = 512
    lambda_r1: float = 1.0
    lambda_style: float = 1.0
    lambda_diversity: float = 1.0  # 2 for AFHQ; decays linearly to 0 over diversity_decay_steps
    diversity_decay_steps: int = 100000
    lambda_cycle: float = 1.0
    mapping_lr: float = 1e-6
    ema_decay: float = 0.999


@dataclass
class TrainConfig:
    # each option of these groups brings its own schema through its defaults list
    model: Any = MISSING
    dataset: Any = MISSING
    optimizer: Any = MISSING
    device: DeviceConfig = field(default_factory=DeviceConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    seed: int = 0
    resume: str | None = None
    # resume with other model / dataset / optimizer values than the checkpoint's (trainer.*,
    # device.* and metrics.* may always change)
    resume_allow_changes: bool = False


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


def register_configs() -> None:
    """Make the schemas available to the YAML files' defaults lists."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="sample_schema", node=SampleConfig)
    store.store(name="translate_schema", node=TranslateConfig)
    store.store(name="eval_schema", node=EvalConfig)
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
    for name, node in {
        "gan": GANModelConfig,
        "dcgan": DCGANModelConfig,
        "wgan": WGANModelConfig,
        "wgan_gp": WGANGPModelConfig,
        "cyclegan": CycleGANModelConfig,
        "pix2pix": Pix2PixModelConfig,
        "stargan": StarGANModelConfig,
        "stargan_v2": StarGANv2ModelConfig,
    }.items():
        store.store(group="model", name=f"{name}_schema", node=node)
