"""Multi-domain networks of StarGAN and StarGAN v2 against the reference sizes and behaviour."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gantrain.nets.stargan import StarGANDiscriminator, StarGANGenerator
from gantrain.nets.stargan_v2 import (
    AdaIN,
    AdaINResidualBlock,
    Discriminator,
    Generator,
    MappingNetwork,
    ResidualBlock,
    StyleEncoder,
    default_base_width,
    he_init,
)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Parameter counts worked out from the layer sizes alone, independently of the network code.
def conv(in_width: int, out_width: int, kernel: int, bias: bool = True) -> int:
    return in_width * out_width * kernel * kernel + (out_width if bias else 0)


def linear(in_width: int, out_width: int) -> int:
    return in_width * out_width + out_width


def residual_block(in_width: int, out_width: int, normalize: bool) -> int:
    norms = 2 * (2 * in_width) if normalize else 0  # two affine instance norms over in_width
    shortcut = conv(in_width, out_width, 1, bias=False) if in_width != out_width else 0
    return norms + conv(in_width, in_width, 3) + conv(in_width, out_width, 3) + shortcut


def adain_residual_block(in_width: int, out_width: int, style_dim: int = 64) -> int:
    styles = linear(style_dim, 2 * in_width) + linear(style_dim, 2 * out_width)
    shortcut = conv(in_width, out_width, 1, bias=False) if in_width != out_width else 0
    return styles + conv(in_width, out_width, 3) + conv(out_width, out_width, 3) + shortcut


# AFHQ: 256 pixels, first width 2**14 / 256 = 64, capped at 512.
GENERATOR_DOWNSAMPLINGS_256 = [(64, 128), (128, 256), (256, 512), (512, 512)]
TRUNK_DOWNSAMPLINGS_256 = [(64, 128), (128, 256), (256, 512), (512, 512), (512, 512), (512, 512)]


def generator_count(downsamplings: list[tuple[int, int]]) -> int:
    total = conv(3, 64, 3) + 2 * 64 + conv(64, 3, 1)  # from_rgb; to_rgb's norm and conv
    total += sum(residual_block(a, b, normalize=True) for a, b in downsamplings)
    total += sum(adain_residual_block(b, a) for a, b in downsamplings)
    return total + 2 * residual_block(512, 512, normalize=True) + 2 * adain_residual_block(512, 512)


def trunk_count() -> int:
    blocks = sum(residual_block(a, b, normalize=False) for a, b in TRUNK_DOWNSAMPLINGS_256)
    return conv(3, 64, 3) + blocks + conv(512, 512, 4)


def test_stargan_parameter_counts_match_the_reference():
    # The reference code prints 8.43M and 44,762,048 at 128 pixels with 5 CelebA attributes.
    assert count(StarGANGenerator(num_labels=5)) == 8_430_528
    assert count(StarGANDiscriminator(num_labels=5, image_size=128)) == 44_762_048


def test_stargan_v2_afhq_parameter_counts():
    assert count(Generator(256)) == generator_count(GENERATOR_DOWNSAMPLINGS_256) == 33_892_995
    mapping = linear(16, 512) + 3 * linear(512, 512) + 3 * (3 * linear(512, 512) + linear(512, 64))
    assert count(MappingNetwork(num_domains=3)) == mapping == 3_259_072
    assert count(StyleEncoder(256, num_domains=3)) == trunk_count() + 3 * linear(512, 64) == 20_949_760
    assert count(Discriminator(256, num_domains=3)) == trunk_count() + conv(512, 3, 1) == 20_852_803


def test_stargan_v2_generator_matches_the_published_celeba_hq_count():
    # The official CelebA-HQ generator (w_hpf=1) halves the image once more than ours at 256;
    # its high-pass branch has no parameters. Its log prints 43,467,395 parameters.
    assert count(Generator(512, base_width=64)) == 43_467_395


def test_stargan_generator_translates_at_the_input_size():
    generator = StarGANGenerator(num_labels=3, ngf=8, n_blocks=2)
    images = generator(torch.randn(2, 3, 64, 48), torch.tensor([[1.0, 0, 0], [0, 1, 1]]))
    assert images.shape == (2, 3, 64, 48)
    assert images.abs().max() <= 1


def test_stargan_generator_layout_follows_the_reference():
    generator = StarGANGenerator(num_labels=5)
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert convs[0].in_channels == 3 + 5
    assert all(c.bias is None for c in convs)
    assert all(c.padding_mode == "zeros" for c in convs)
    norms = [m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 5 + 2 * 6
    assert all(n.affine and n.track_running_stats for n in norms)


def test_stargan_generator_batch_norm_option_swaps_every_norm_and_keeps_the_parameter_count():
    generator = StarGANGenerator(num_labels=5, norm="batch")
    assert count(generator) == 8_430_528
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in generator.modules())
    assert len([m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]) == 5 + 2 * 6
    with pytest.raises(ValueError, match="instance or batch"):
        StarGANGenerator(num_labels=5, norm="group")


def test_stargan_generator_output_depends_on_the_target_label():
    torch.manual_seed(0)
    generator = StarGANGenerator(num_labels=2, ngf=8, n_blocks=1)
    images = torch.randn(1, 3, 16, 16)
    to_first = generator(images, torch.tensor([[1.0, 0.0]]))
    to_second = generator(images, torch.tensor([[0.0, 1.0]]))
    assert not torch.allclose(to_first, to_second)


@pytest.mark.parametrize(("image_size", "n_layers", "patch"), [(32, 4, 2), (128, 6, 2), (64, 4, 4)])
def test_stargan_discriminator_heads(image_size, n_layers, patch):
    discriminator = StarGANDiscriminator(num_labels=5, image_size=image_size, ndf=4, n_layers=n_layers)
    scores, logits = discriminator(torch.randn(2, 3, image_size, image_size))
    assert scores.shape == (2, 1, patch, patch)
    assert logits.shape == (2, 5)


def test_stargan_discriminator_layout_follows_the_reference():
    discriminator = StarGANDiscriminator(num_labels=5)
    widths = [m.out_channels for m in discriminator.trunk if isinstance(m, nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 1024, 2048]
    assert all(m.negative_slope == 0.01 for m in discriminator.trunk if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) for m in discriminator.modules())
    assert discriminator.classes.kernel_size == (2, 2)
    assert discriminator.source.bias is None and discriminator.classes.bias is None


def test_stargan_discriminator_rejects_image_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="multiple of 64, not 100"):
        StarGANDiscriminator(num_labels=5, image_size=100)
    with pytest.raises(ValueError, match="built for 32x32 images, not 64x64"):
        StarGANDiscriminator(num_labels=5, image_size=32, ndf=4, n_layers=4)(torch.randn(1, 3, 64, 64))


def test_default_base_width():
    assert default_base_width(256) == 64
    assert default_base_width(128) == 128
    assert default_base_width(32) == 512


@pytest.mark.parametrize(
    ("image_size", "base_width", "max_width", "bottleneck"),
    [(32, 32, 128, 16), (64, 16, 64, 16), (16, 8, 32, 8)],
)
def test_stargan_v2_shapes(image_size, base_width, max_width, bottleneck):
    widths = {"base_width": base_width, "max_width": max_width}
    images = torch.randn(2, 3, image_size, image_size)
    domains = torch.tensor([0, 1])
    generator = Generator(image_size, style_dim=8, **widths)
    assert generator.encoder(generator.from_rgb(images)).shape[-1] == bottleneck
    styles = MappingNetwork(num_domains=2, latent_dim=4, style_dim=8, width=16)(torch.randn(2, 4), domains)
    assert styles.shape == (2, 8)
    assert generator(images, styles).shape == images.shape
    encoder = StyleEncoder(image_size, num_domains=2, style_dim=8, **widths)
    assert encoder(images, domains).shape == (2, 8)
    assert Discriminator(image_size, num_domains=2, **widths)(images, domains).shape == (2,)


def test_stargan_v2_generator_widths_mirror_back_to_the_base_width():
    generator = Generator(256)
    assert [(b.conv1.in_channels, b.conv2.out_channels) for b in generator.decoder] == [
        (512, 512),
        (512, 512),
        (512, 512),
        (512, 256),
        (256, 128),
        (128, 64),
    ]
    assert [b.upsample for b in generator.decoder] == [False, False, True, True, True, True]
    assert not any(isinstance(m, nn.Tanh) for m in generator.modules())


def test_stargan_v2_generator_output_depends_on_the_style():
    torch.manual_seed(0)
    generator = Generator(32, style_dim=8, base_width=8, max_width=16)
    images = torch.randn(1, 3, 32, 32)
    assert not torch.allclose(generator(images, torch.randn(1, 8)), generator(images, torch.randn(1, 8)))


def test_mapping_network_uses_each_samples_own_domain_head():
    torch.manual_seed(0)
    mapping = MappingNetwork(num_domains=3, latent_dim=4, style_dim=8, width=16)
    latent = torch.randn(1, 4).expand(4, 4)
    styles = mapping(latent, torch.tensor([0, 2, 1, 2]))
    assert torch.equal(styles[1], styles[3])
    assert not torch.allclose(styles[0], styles[1])
    assert not torch.allclose(styles[1], styles[2])
    assert torch.allclose(styles[2], mapping.heads[1](mapping.shared(latent[:1]))[0], atol=1e-5)


def test_style_encoder_uses_each_samples_own_domain_head():
    torch.manual_seed(0)
    encoder = StyleEncoder(16, num_domains=2, style_dim=8, base_width=8, max_width=16)
    images = torch.randn(1, 3, 16, 16).expand(3, 3, 16, 16)
    styles = encoder(images, torch.tensor([1, 0, 1]))
    assert torch.allclose(styles[0], styles[2])
    assert not torch.allclose(styles[0], styles[1])
    assert torch.allclose(styles[1], encoder.heads[0](encoder.trunk(images[:1]).flatten(1))[0], atol=1e-5)


def test_discriminator_returns_the_logit_of_each_samples_domain():
    torch.manual_seed(0)
    discriminator = Discriminator(16, num_domains=3, base_width=8, max_width=16)
    images = torch.randn(3, 3, 16, 16)
    every_domain = discriminator.logits(discriminator.trunk(images)).flatten(1)
    assert torch.allclose(discriminator(images, torch.tensor([2, 0, 1])), every_domain[[0, 1, 2], [2, 0, 1]])


def test_adain_with_a_zero_style_map_is_instance_norm():
    adain = AdaIN(style_dim=4, num_features=3)
    nn.init.zeros_(adain.style.weight)
    nn.init.zeros_(adain.style.bias)
    x = torch.randn(2, 3, 5, 5) * 3 + 1
    assert torch.allclose(adain(x, torch.randn(2, 4)), F.instance_norm(x), atol=1e-6)


def test_adain_scales_by_one_plus_gamma_and_shifts_by_beta():
    adain = AdaIN(style_dim=1, num_features=1)
    with torch.no_grad():
        adain.style.weight.copy_(torch.tensor([[0.0], [0.0]]))
        adain.style.bias.copy_(torch.tensor([2.0, -1.0]))  # gamma 2, beta -1
    x = torch.randn(1, 1, 4, 4)
    assert torch.allclose(adain(x, torch.zeros(1, 1)), 3 * F.instance_norm(x) - 1, atol=1e-6)


def test_residual_blocks_divide_the_sum_by_sqrt_two():
    block = ResidualBlock(4, 4, normalize=True)
    last_conv = block.residual[-1]
    nn.init.zeros_(last_conv.weight)
    nn.init.zeros_(last_conv.bias)
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(block(x), x / math.sqrt(2))

    adain_block = AdaINResidualBlock(4, 4, style_dim=3)
    nn.init.zeros_(adain_block.conv2.weight)
    nn.init.zeros_(adain_block.conv2.bias)
    assert torch.allclose(adain_block(x, torch.randn(2, 3)), x / math.sqrt(2))


def test_residual_blocks_resize_and_rewidth_the_shortcut():
    block = ResidualBlock(4, 8, normalize=False, downsample=True)
    assert block(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)
    assert isinstance(block.shortcut[0], nn.Conv2d) and block.shortcut[0].bias is None
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in block.modules())
    adain_block = AdaINResidualBlock(8, 4, style_dim=3, upsample=True)
    assert adain_block(torch.randn(1, 8, 4, 4), torch.randn(1, 3)).shape == (1, 4, 8, 8)


def test_stargan_v2_networks_are_he_initialised():
    torch.manual_seed(0)
    layer = nn.Linear(256, 512)
    he_init(layer)
    assert torch.count_nonzero(layer.bias) == 0
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.02)
    discriminator = Discriminator(16, num_domains=2, base_width=8, max_width=16)
    biases = [m.bias for m in discriminator.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)


@pytest.mark.parametrize("image_size", [0, 8, 48, 100, 255])
def test_stargan_v2_rejects_image_sizes_that_are_not_powers_of_two(image_size):
    for build in (Generator, lambda size: StyleEncoder(size, 2), lambda size: Discriminator(size, 2)):
        with pytest.raises(ValueError, match=f"power of two of at least 16.*not {image_size}"):
            build(image_size)


def test_stargan_v2_trunk_rejects_images_of_another_size():
    encoder = StyleEncoder(16, num_domains=2, base_width=8, max_width=16)
    with pytest.raises(ValueError, match="built for 16x16 images, not 32x32"):
        encoder(torch.randn(1, 3, 32, 32), torch.tensor([0]))
