"""The choices that settings take, as enums.

Kept apart from the Hydra schemas (:mod:`gantrain.config`) so that losses, networks and
datasets can name an option without depending on Hydra.  Each value is what a user types
(``model.gan_loss=lsgan``).
"""

from __future__ import annotations

from enum import Enum


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


class FeatureNetwork(str, Enum):
    inception = "inception"  # the standard FID / KID network (weights file or download)
    random = "random"  # a seeded untrained network: offline, ranks runs, not comparable with papers


class GeneratorLoss(str, Enum):
    """Generator objective of the original GAN (Goodfellow et al. 2014)."""

    non_saturating = "non_saturating"  # maximise log D(G(z)); what everybody trains with
    minimax = "minimax"  # minimise log(1 - D(G(z))); saturates early, kept to show why


class AdversarialLoss(str, Enum):
    """An adversarial objective (pix2pix/CycleGAN's ``gan_mode``, SNGAN's hinge)."""

    lsgan = "lsgan"  # least squares (Mao et al. 2017): CycleGAN's default
    vanilla = "vanilla"  # binary cross-entropy: pix2pix's default
    wgangp = "wgangp"  # Wasserstein with a gradient penalty on the discriminator
    hinge = "hinge"  # hinge loss (Lim & Ye 2017): SNGAN's and BigGAN's


class Norm(str, Enum):
    """Normalisation of the DCGAN-style discriminators."""

    batch = "batch"
    layer = "layer"  # GroupNorm(1, C): per-sample, safe with the gradient penalty
    none = "none"


class ImageNorm(str, Enum):
    """Normalisation of the image-to-image networks."""

    instance = "instance"
    batch = "batch"
    none = "none"


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


class Preprocess(str, Enum):
    """How translation datasets resize and crop, as in pix2pix/CycleGAN's ``--preprocess``."""

    resize_and_crop = "resize_and_crop"  # resize to load_size, random crop image_size
    crop = "crop"  # random crop image_size
    scale_width = "scale_width"  # width to image_size, aspect kept
    scale_width_and_crop = "scale_width_and_crop"  # width to load_size, random crop image_size
    none = "none"  # sides rounded to multiples of 4


class LabelKind(str, Enum):
    attributes = "attributes"  # several binary attributes per image (multi-hot label)
    domains = "domains"  # exactly one domain per image (integer label)


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
