"""Network shapes and sizes against the reference figures (REFERENCE.md)."""

import pytest
import torch

from gantrain.errors import ConfigError
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.mlp import MLPDiscriminator, MLPGenerator
from gantrain.options import Norm


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_dcgan_64_parameter_counts_match_pytorch_examples():
    assert count(DCGANGenerator(nz=100, ngf=64, channels=3, image_size=64)) == 3_576_704
    assert count(DCGANDiscriminator(ndf=64, channels=3, image_size=64)) == 2_765_568


def test_dcgan_64_layout_is_the_reference_one():
    generator = DCGANGenerator(image_size=64)
    widths = [m.out_channels for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert widths == [512, 256, 128, 64, 3]
    discriminator = DCGANDiscriminator(image_size=64)
    norms = [m for m in discriminator.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert [n.num_features for n in norms] == [128, 256, 512]  # none on the input layer
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for m in discriminator.modules())


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_at_every_supported_size(size, channels):
    generator = DCGANGenerator(nz=16, ngf=8, channels=channels, image_size=size)
    images = generator(torch.randn(2, 16))
    assert images.shape == (2, channels, size, size)
    assert images.abs().max() <= 1
    for norm in Norm:
        assert DCGANDiscriminator(ndf=8, channels=channels, image_size=size, norm=norm)(images).shape == (2,)


def test_dcgan_one_stage_per_doubling():
    stages = {
        size: sum(isinstance(m, torch.nn.ConvTranspose2d) for m in DCGANGenerator(image_size=size).modules())
        for size in (32, 64, 128)
    }
    assert stages == {32: 4, 64: 5, 128: 6}


def test_dcgan_rejects_unsupported_size_clearly():
    with pytest.raises(ConfigError, match="dataset.image_size"):
        DCGANGenerator(image_size=48)


def test_layer_norm_critic_does_not_mix_samples():
    critic = DCGANDiscriminator(ndf=8, image_size=32, norm=Norm.layer)
    batch = torch.randn(4, 3, 32, 32)
    assert torch.allclose(critic(batch)[:1], critic(batch[:1]), atol=1e-5)


def test_mlp_shapes():
    generator = MLPGenerator(nz=10, hidden=[32, 32], image_shape=(1, 28, 28))
    images = generator(torch.randn(5, 10))
    assert images.shape == (5, 1, 28, 28)
    assert MLPDiscriminator((1, 28, 28), [16])(images).shape == (5,)


def test_mlp_discriminator_dropout_acts_only_in_training():
    torch.manual_seed(0)
    plain = MLPDiscriminator((1, 8, 8), [32, 16])
    dropping = MLPDiscriminator((1, 8, 8), [32, 16], dropout=0.5)
    dropping.load_state_dict(plain.state_dict())  # dropout adds no parameters
    images = torch.randn(4, 1, 8, 8)
    assert not torch.equal(dropping(images), plain(images))
    dropping.eval()
    assert torch.equal(dropping(images), plain(images))


def test_mlp_discriminator_of_the_papers_maxout_units():
    """goodfeli/adversarial's MNIST discriminator: two layers of 240 maxout units of 5 pieces, one output."""
    discriminator = MLPDiscriminator((1, 28, 28), [240, 240], maxout_pieces=5)
    expected = (784 * 1200 + 1200) + (240 * 1200 + 1200) + (240 + 1)
    assert sum(p.numel() for p in discriminator.parameters()) == expected
    first = discriminator.net[1]
    images = torch.randn(3, 1, 28, 28)
    pieces = first(images.flatten(1)).view(3, 240, 5)
    assert torch.equal(discriminator.net[2](first(images.flatten(1))), pieces.amax(-1))
    assert discriminator(images).shape == (3,)


def test_mlp_discriminator_may_see_the_batch_spread():
    """With minibatch_std the last layer also sees the batch's mean standard deviation: one more weight."""
    plain = MLPDiscriminator((1, 4, 4), [8, 6])
    spread = MLPDiscriminator((1, 4, 4), [8, 6], minibatch_std=True)
    assert count(spread) == count(plain) + 1
    assert plain.state_dict().keys() == spread.state_dict().keys()
    hidden = spread.net[:-1]
    images = torch.randn(5, 1, 4, 4)
    features = hidden(images)
    assert features.shape == (5, 7)
    expected = features[:, :-1].std(0, correction=0).mean()
    assert expected > 0 and torch.allclose(features[:, -1], expected.expand(5))
    alike = hidden(images[:1].expand(5, -1, -1, -1))
    assert torch.equal(alike[:, -1], torch.zeros(5))  # a collapsed batch has no spread


def test_packed_mlp_discriminator_judges_consecutive_images_together():
    """PacGAN: pack=2 gives one logit per two consecutive images, from their pixels side by side, and its first
    layer is twice as wide; a batch that does not divide into packs is refused with the setting to change."""
    plain = MLPDiscriminator((1, 4, 4), [8, 6])
    packed = MLPDiscriminator((1, 4, 4), [8, 6], pack=2)
    assert count(packed) == count(plain) + 8 * 16
    images = torch.randn(6, 1, 4, 4)
    logits = packed(images)
    assert logits.shape == (3,)
    side_by_side = torch.cat([images[2].flatten(), images[3].flatten()])
    assert torch.allclose(logits[1], packed.net(side_by_side[None]).view(()))
    swapped = images.clone()
    swapped[[2, 3]] = images[[3, 2]]
    assert torch.equal(packed(swapped)[0], logits[0]) and not torch.equal(packed(swapped)[1], logits[1])
    with pytest.raises(ConfigError, match="model.d_pack=2 .* make trainer.batch_size a multiple of 2"):
        packed(torch.randn(5, 1, 4, 4))
