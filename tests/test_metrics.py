"""FID / KID through torchmetrics with an offline feature network, the weights-file checks, the collapse indicator."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from gantrain.data.shapes import ShapesDataset
from gantrain.errors import ConfigError
from gantrain.metrics import (
    INCEPTION_FILE,
    INCEPTION_URL,
    RandomFeatures,
    cache_file,
    cached_features,
    extract_features,
    feature_distances,
    feature_network,
    improves,
    inception_network,
    mean_pairwise_distance,
    to_uint8_rgb,
)


def shapes(count: int, seed: int = 0) -> torch.Tensor:
    dataset = ShapesDataset(image_size=32, num_samples=count, seed=seed)
    return torch.stack([dataset[i][0] for i in range(count)])


@pytest.fixture(scope="module")
def network() -> RandomFeatures:
    return RandomFeatures()


def test_fid_and_kid_are_zero_for_identical_sets_and_grow_with_a_shift(network):
    real = extract_features(network, [shapes(400)])
    other_draw = extract_features(network, [shapes(400, seed=1)])
    brighter = extract_features(network, [(shapes(400, seed=1) + 0.5).clamp(-1, 1)])
    noisy = extract_features(network, [(shapes(400, seed=1) + 0.5 * torch.randn(400, 3, 32, 32)).clamp(-1, 1)])

    same = feature_distances(real, real)
    draw, shift, noise = (feature_distances(real, fake) for fake in (other_draw, brighter, noisy))
    assert same["fid"] == pytest.approx(0.0, abs=1e-4 * draw["fid"])
    # KID is an unbiased estimate: about 0, of either sign, for sets from one distribution
    assert abs(same["kid"]) < 0.01 * shift["kid"] and abs(draw["kid"]) < 0.01 * shift["kid"]
    assert 0 < draw["fid"] < shift["fid"] and draw["fid"] < noise["fid"]
    assert draw["kid"] < shift["kid"] and draw["kid"] < noise["kid"]


def test_cached_features_give_the_same_figures_as_torchmetrics_reading_images(network):
    """torchmetrics' own FID / KID with the network passed as ``feature=`` agree with the feature-level path."""
    real, fake = shapes(40), (shapes(40, seed=2) * 0.8)
    fid = FrechetInceptionDistance(feature=network)
    kid = KernelInceptionDistance(feature=network, subset_size=40, subsets=10)
    for metric in (fid, kid):
        metric.update(to_uint8_rgb(real), real=True)
        metric.update(to_uint8_rgb(fake), real=False)
    torch.manual_seed(0)
    ours = feature_distances(extract_features(network, [real]), extract_features(network, [fake]))
    assert ours["fid"] == pytest.approx(float(fid.compute()), rel=1e-4)
    torch.manual_seed(0)
    assert ours["kid"] > 0 and float(kid.compute()[0]) > 0


def test_random_features_depend_on_the_seed_only():
    images = to_uint8_rgb(shapes(4))
    assert torch.equal(RandomFeatures(0)(images), RandomFeatures(0)(images))
    assert not torch.equal(RandomFeatures(0)(images), RandomFeatures(1)(images))
    grey = to_uint8_rgb(shapes(4).mean(1, keepdim=True))
    assert RandomFeatures()(grey).shape == (4, RandomFeatures.num_features)


def test_offline_without_weights_file_says_which_file_to_get(monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torch_fidelity.feature_extractor_inceptionv3.load_state_dict_from_url", no_network)
    with pytest.raises(ConfigError) as error:
        feature_network("inception")
    message = str(error.value)
    assert INCEPTION_URL in message and INCEPTION_FILE in message and "metrics.inception_weights=" in message
    assert "metrics.features=random" in message


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*" + INCEPTION_FILE):
        inception_network(str(tmp_path / INCEPTION_FILE))


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_weights_file_with_pickled_code_is_refused_unexecuted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / INCEPTION_FILE
    torch.save({"Conv2d_1a_3x3.conv.weight": RunsCode()}, weights)
    with pytest.raises(ConfigError, match="not a plain PyTorch weights file"):
        inception_network(str(weights))
    assert not (tmp_path / "pwned").exists()


def test_mean_pairwise_distance_falls_to_zero_when_samples_collapse():
    varied = shapes(16)
    collapsed = varied[:1].expand(16, -1, -1, -1)
    assert mean_pairwise_distance(collapsed) == pytest.approx(0.0, abs=1e-5)
    assert mean_pairwise_distance(varied) > 0.2
    # pixels in [-1, 1] apart by 2 everywhere: RMS distance 2
    assert mean_pairwise_distance(torch.stack([-torch.ones(3, 4, 4), torch.ones(3, 4, 4)])) == pytest.approx(2.0)


def test_best_metric_direction():
    assert improves("fid", 10.0, 12.0) and not improves("fid", 13.0, 12.0)
    assert improves("all_kept", 0.8, 0.7) and not improves("psnr", 20.0, 21.0)
    assert improves("kid", 0.1, None) and not improves("fid", float("nan"), None)


def test_real_features_are_computed_once_and_cached_beside_the_data(tmp_path):
    data = tmp_path / "facades"
    data.mkdir()
    path = cache_file("path: facades\nimage_size: 256", str(data), "random", 100)
    assert path.parent == data / ".gantrain_cache"
    assert cache_file("image_size: 128", str(data), "random", 100) != path
    calls = []

    def compute() -> torch.Tensor:
        calls.append(1)
        return torch.arange(6.0).reshape(3, 2)

    first, second = cached_features(path, compute), cached_features(path, compute)
    assert torch.equal(first, second) and len(calls) == 1
    path.write_bytes(b"truncated")  # an unreadable cache is recomputed, not trusted
    assert torch.equal(cached_features(path, compute), first) and len(calls) == 2


def test_embedded_data_cache_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_file("shapes", None, "random", 100).parent == Path(tmp_path) / "gantrain"
