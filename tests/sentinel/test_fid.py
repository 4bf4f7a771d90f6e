"""FID from mergeable moments, checked against torchmetrics and a from-scratch scipy.sqrtm FID."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchmetrics.image.fid import FrechetInceptionDistance  # noqa: E402

from sentinel.fid import FeatureMoments, fid, frechet_distance  # noqa: E402


class PoolProject(torch.nn.Module):
    """A fixed, seeded uint8-image -> 32-d feature map (pool, project, tanh)."""

    num_features = 32

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(3 * 4 * 4, self.num_features, generator=g) / 4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x.float() / 255.0, 4).flatten(1)
        return torch.tanh((pooled - 0.5) @ self.w * 3.0)


class ClipImageTower(torch.nn.Module):
    """open_clip's encode_image behind torchmetrics' custom-extractor contract (uint8 in)."""

    def __init__(self, model: torch.nn.Module, size: int) -> None:
        super().__init__()
        self.model, self.size = model, size
        self.num_features = int(model.visual.output_dim)
        self.register_buffer("mean", torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = (x.float() / 255.0 - self.mean) / self.std
        return self.model.encode_image(pixels).float()


def _images(seed: int, n: int, size: int, shift: int = 0) -> torch.Tensor:
    """Blocky random images (coarse 4x4 colour layout + fine noise) so features vary a lot."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 200, (n, 3, 4, 4)).repeat(size // 4, axis=2).repeat(size // 4, axis=3)
    fine = rng.integers(0, 56, (n, 3, size, size))
    return torch.from_numpy(np.clip(coarse + fine + shift, 0, 255).astype(np.uint8))


def _features(module: torch.nn.Module, imgs: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return module(imgs).numpy()


def _scipy_fid(x: np.ndarray, y: np.ndarray) -> float:
    """The pytorch-fid / clean-fid formula from raw features: np.cov and scipy.linalg.sqrtm."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _torchmetrics_fid(module: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor, batch: int) -> float:
    metric = FrechetInceptionDistance(feature=module, normalize=False)
    for start in range(0, len(real), batch):
        metric.update(real[start : start + batch], real=True)
    for start in range(0, len(fake), batch):
        metric.update(fake[start : start + batch], real=False)
    return float(metric.compute())


def test_merged_moments_fid_equals_torchmetrics() -> None:
    module = PoolProject().eval()
    real, fake = _images(1, 240, 16), _images(2, 210, 16, shift=25)
    expected = _torchmetrics_fid(module, real, fake, batch=50)

    ref = FeatureMoments()
    for start in range(0, len(real), 80):  # different batching than torchmetrics
        ref.update(_features(module, real[start : start + 80]))
    gen_parts = [FeatureMoments.from_features(_features(module, fake[s : s + 70])) for s in (0, 70, 140)]
    gen = gen_parts[0].merge(gen_parts[1]).merge(gen_parts[2])

    assert gen.n == 210 and ref.n == 240
    assert fid(gen, ref) == pytest.approx(expected, rel=1e-4)
    assert fid(gen, ref) > 1.0  # a real difference, not a trivially zero distance
    assert fid(gen, ref) == pytest.approx(_scipy_fid(_features(module, fake), _features(module, real)), rel=1e-6)


def test_clip_image_tower_fid_equals_torchmetrics() -> None:
    from sentinel.clip import ClipExtractor, ClipSpec

    extractor = ClipExtractor(ClipSpec())
    size = int(extractor.model.visual.image_size[0])
    tower = ClipImageTower(extractor.model, size).eval()
    real, fake = _images(3, 96, size), _images(4, 80, size, shift=40)
    expected = _torchmetrics_fid(tower, real, fake, batch=32)

    ref = FeatureMoments.from_features(_features(tower, real))
    gen = FeatureMoments.from_features(_features(tower, fake[:40])).merge(
        FeatureMoments.from_features(_features(tower, fake[40:])))
    assert gen.dim == tower.num_features
    assert fid(gen, ref) == pytest.approx(expected, rel=1e-4)


def test_window_fid_equals_merge_of_bucket_states() -> None:
    rng = np.random.default_rng(7)
    gen_x = rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24)) + 0.3
    ref_x = rng.normal(size=(400, 24)) @ rng.normal(size=(24, 24))
    one_shot = fid(FeatureMoments.from_features(gen_x), FeatureMoments.from_features(ref_x))

    buckets = [FeatureMoments.from_features(part) for part in np.array_split(gen_x, [37, 190])]
    window = FeatureMoments()  # the empty table default merges like any other state
    for bucket in reversed(buckets):
        window = window.merge(bucket)
    assert window.n == 300
    assert fid(window, FeatureMoments.from_features(ref_x)) == pytest.approx(one_shot, rel=1e-9)
    np.testing.assert_allclose(window.covariance, np.cov(gen_x, rowvar=False), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(window.mean, gen_x.mean(0), rtol=1e-12)


@pytest.mark.parametrize("encoding", ["b64", "list"])
def test_serialization_round_trip_is_exact_and_json_safe(encoding: str) -> None:
    rng = np.random.default_rng(3)
    m = FeatureMoments.from_features(rng.normal(size=(50, 10)) * 1e3)
    data = json.loads(json.dumps(m.to_dict(encoding=encoding)))
    assert data["v"] == 1 and data["encoding"] == encoding
    back = FeatureMoments.from_dict(data)
    assert back.n == m.n
    np.testing.assert_array_equal(back.sum, m.sum)
    np.testing.assert_array_equal(back.sum_outer, m.sum_outer)
    back.update(rng.normal(size=(2, 10)))  # decoded arrays are writable
    assert FeatureMoments.from_dict(FeatureMoments().to_dict()).dim is None
    assert FeatureMoments.from_dict(None).n == 0
    with pytest.raises(ValueError, match="format"):
        FeatureMoments.from_dict({**data, "v": 99})


def test_b64_is_float64_little_endian_row_major() -> None:
    import base64

    m = FeatureMoments.from_features(np.array([[1.0, 2.0], [3.0, 5.0]]))
    raw = base64.b64decode(m.to_dict()["sum_outer"])
    np.testing.assert_array_equal(np.frombuffer(raw, "<f8"), [10.0, 17.0, 17.0, 29.0])


def test_frechet_distance_closed_form_for_diagonal_gaussians() -> None:
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 1.0 + 4.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0.0, abs=1e-12)


def test_errors_are_clear() -> None:
    one = FeatureMoments.from_features(np.ones((1, 4)))
    many = FeatureMoments.from_features(np.random.default_rng(0).normal(size=(10, 4)))
    with pytest.raises(ValueError, match="at least 2 generated"):
        fid(one, many)
    with pytest.raises(ValueError, match="at least 2 reference"):
        fid(many, FeatureMoments())
    with pytest.raises(ValueError, match="dim"):
        many.merge(FeatureMoments.from_features(np.ones((3, 5))))
    with pytest.raises(ValueError, match="dim"):
        many.update(np.ones((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        many.update(np.full((1, 4), np.nan))
