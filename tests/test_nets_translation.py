"""Image-to-image networks of CycleGAN and pix2pix against the reference sizes and layouts."""

import pytest
import torch
from torch import nn

from gantrain.errors import ConfigError
from gantrain.nets.patchgan import PatchDiscriminator, PixelDiscriminator
from gantrain.nets.resnet import ResidualBlock, ResnetGenerator
from gantrain.nets.unet import UnetGenerator, UnetSkipBlock


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnet_generator_parameter_counts_match_the_reference():
    assert count(ResnetGenerator(n_blocks=9)) == 11_378_179
    assert count(ResnetGenerator(n_blocks=6)) == 7_837_699


def test_patch_discriminator_parameter_counts_match_the_reference():
    assert count(PatchDiscriminator()) == 2_764_737  # CycleGAN: RGB, instance norm
    assert count(PatchDiscriminator(in_channels=6, norm="batch")) == 2_768_705  # pix2pix: condition + image


def test_unet_parameter_counts_match_the_reference():
    # The reference code builds exactly these (it prints them rounded: 54.414M and 41.829M).
    assert count(UnetGenerator(num_downs=8)) == 54_413_955
    assert count(UnetGenerator(num_downs=7)) == 41_828_995


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_resnet_generator_keeps_the_image_size(size):
    generator = ResnetGenerator(ngf=8, n_blocks=2)
    images = generator(torch.randn(2, 3, *size))
    assert images.shape == (2, 3, *size)
    assert images.abs().max() <= 1


def test_resnet_generator_grayscale_in_and_out():
    generator = ResnetGenerator(in_channels=1, out_channels=1, ngf=8, n_blocks=2)
    assert generator(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)


def test_resnet_generator_rejects_sides_not_multiple_of_four():
    with pytest.raises(ConfigError, match="dataset.image_size"):
        ResnetGenerator(ngf=8, n_blocks=1)(torch.randn(1, 3, 30, 32))


def test_resnet_generator_uses_instance_norm_without_affine_and_biased_convs():
    generator = ResnetGenerator()
    norms = [m for m in generator.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 5 + 2 * 9  # stem, 2 down, 2 up; two per residual block
    assert not any(n.affine or n.track_running_stats for n in norms)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(c.bias is not None for c in convs)


def test_resnet_generator_batch_norm_drops_the_conv_biases():
    generator = ResnetGenerator(norm="batch")
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [c.bias is not None for c in convs].count(True) == 1  # only the output conv


def test_residual_blocks_pad_by_reflection_not_zeros():
    blocks = [m for m in ResnetGenerator().modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 9
    for block in blocks:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        pads = [m for m in block.modules() if isinstance(m, nn.ReflectionPad2d)]
        assert len(convs) == len(pads) == 2
        assert all(c.padding == (0, 0) for c in convs)


def test_resnet_dropout_sits_inside_each_residual_block():
    generator = ResnetGenerator(ngf=8, n_blocks=3, use_dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in generator.modules()) == 3


def test_patch_discriminator_gives_a_30x30_map_at_256():
    discriminator = PatchDiscriminator(ndf=8)  # same geometry as ndf=64
    assert discriminator(torch.randn(1, 3, 256, 256)).shape == (1, 1, 30, 30)


def test_patch_discriminator_has_no_norm_on_the_input_layer():
    discriminator = PatchDiscriminator(norm="batch")
    norms = [m.num_features for m in discriminator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms == [128, 256, 512]


def test_pixel_discriminator_scores_every_pixel():
    discriminator = PixelDiscriminator(ndf=8)
    assert discriminator(torch.randn(2, 3, 20, 24)).shape == (2, 1, 20, 24)


def test_unet_256_shape():
    generator = UnetGenerator(num_downs=8, ngf=4)
    images = generator(torch.randn(2, 3, 256, 256))
    assert images.shape == (2, 3, 256, 256)
    assert images.abs().max() <= 1


def test_unet_128_shape():
    generator = UnetGenerator(in_channels=1, out_channels=2, num_downs=7, ngf=4)
    assert generator(torch.randn(2, 1, 128, 128)).shape == (2, 2, 128, 128)


def test_unet_rejects_sizes_it_cannot_halve_down_to_one_pixel():
    with pytest.raises(
        ConfigError, match=r"multiples of 256.*set dataset.image_size=256 or model.generator=unet_128"
    ):
        UnetGenerator(num_downs=8, ngf=4)(torch.randn(1, 3, 128, 128))


def test_unet_256_widths_follow_the_reference():
    generator = UnetGenerator()
    widths = [m.out_channels for m in generator.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [64, 128, 256, 512, 512, 512, 512, 512]
    norms = [m for m in generator.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6 + 7  # none after the outermost and innermost down convs, none at the output


def test_unet_256_dropout_in_the_three_inner_decoder_blocks():
    blocks = [m for m in UnetGenerator().modules() if isinstance(m, UnetSkipBlock)]  # outermost first
    with_dropout = [isinstance(block.up[-1], nn.Dropout) for block in blocks]
    assert with_dropout == [False, False, False, True, True, True, False]
    assert all(
        isinstance(block.up[-2], nn.BatchNorm2d) for block in blocks if isinstance(block.up[-1], nn.Dropout)
    )
    assert not any(isinstance(m, nn.Dropout) for m in UnetGenerator(use_dropout=False).modules())
