"""The mirror-image OOD scores: transform-ratio (the model's density of x against that of x's mirror images)
and composite-ratio (against the even mixture of that and the likelihood-ratio background)."""

import math

import numpy as np
import pytest
import torch

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.evaluation.ood_metrics import auroc
from deepgen.models.base import GenerativeModel
from deepgen.ood import Detector, applicable_scores
from deepgen.ood.scores import TRANSFORMS, check_transforms, transform

pytestmark = pytest.mark.usefixtures("one_thread")
H, W = 4, 6
SPEC = DataSpec("img", (1, H, W))
D = H * W
LN2 = math.log(2)


class PixelGaussian(GenerativeModel):
    """Independent N(mu_ij, scale^2) pixels around a mean image mu that is not mirror-symmetric."""

    name = "test-pixel-gaussian"
    density = "exact"
    capabilities = frozenset({"log_prob"})

    def __init__(self, spec, scale: float = 1.0):
        super().__init__(spec, scale=scale)
        self.scale = scale
        c, h, w = spec.shape
        self.register_buffer("mu", torch.linspace(-2, 3, h * w).pow(2).reshape(c, h, w))

    def log_prob(self, x, context=None):
        z = (x - self.mu) / self.scale
        return (-0.5 * (z.pow(2) + math.log(2 * math.pi)) - math.log(self.scale)).flatten(1).sum(1)


def draws(n, seed=0, shape=(1, H, W)):
    model = PixelGaussian(DataSpec("img", shape))
    return model.mu + torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def test_transforms_permute_pixels_as_numpy_does():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    a = x.numpy()
    expected = {"hflip": a[..., ::-1], "vflip": a[..., ::-1, :], "rot180": a[..., ::-1, ::-1],
                "rot90": np.rot90(a, 1, (2, 3)), "rot270": np.rot90(a, -1, (2, 3)), "transpose": a.transpose(0, 1, 3, 2)}
    assert set(expected) == set(TRANSFORMS)
    for name, e in expected.items():
        t = transform(x, name)
        assert np.array_equal(t.numpy(), e), name
        assert torch.equal(t.flatten(1).sort(1).values, x.flatten(1).sort(1).values)  # a permutation of each image
    assert torch.equal(transform(transform(x, "rot90"), "rot270"), x)


def test_transform_ratio_is_the_formula_and_flips_sign_under_the_mirror():
    model = PixelGaussian(SPEC)
    x = draws(40, seed=1)
    lp = model.log_prob(x).double()
    lh, lv = model.log_prob(x.flip(-1)).double(), model.log_prob(x.flip(-2)).double()
    det = Detector(model, score="transform-ratio")
    expected = -(lp - (torch.logsumexp(torch.stack([lh, lv]), 0) - math.log(2))) / (D * LN2)
    assert torch.allclose(det.decision_function(x), expected)
    # one involution T: s(T x) = -s(x), so a mirrored image scores what its original scores, negated
    one = Detector(model, score="transform-ratio", transforms=["hflip"])
    assert torch.allclose(one.decision_function(x.flip(-1)), -one.decision_function(x))
    # the data are far from mirror-symmetric: every original scores below 0, every mirror image above
    assert (one.decision_function(x) < 0).all()
    assert auroc(det.decision_function(x), det.decision_function(x.flip(-2))) == 1.0
    # a mirror-symmetric image scores exactly 0 under the mirror it is symmetric under
    sym = torch.ones(1, 1, H, W)
    assert one.decision_function(sym).item() == pytest.approx(0.0, abs=1e-12)


def test_composite_ratio_lies_within_a_bit_per_dim_of_the_larger_ratio():
    model, background = PixelGaussian(SPEC), PixelGaussian(SPEC, scale=3.0)
    x = torch.cat([draws(30, seed=2), draws(30, seed=3).flip(-1), 6 * torch.randn(30, 1, H, W)])
    lr = Detector(model, score="likelihood-ratio", background=background).decision_function(x)
    tr = Detector(model, score="transform-ratio").decision_function(x)
    comp = Detector(model, score="composite-ratio", background=background).decision_function(x)
    top = torch.maximum(lr, tr)
    assert (comp <= top + 1e-12).all() and (comp >= top - 1.0 / D - 1e-12).all()
    # the formula: -(log p - log[(p_bg + p_T) / 2]) / (D ln 2)
    lp, lb = model.log_prob(x).double(), background.log_prob(x).double()
    lt = torch.logsumexp(torch.stack([model.log_prob(x.flip(-1)), model.log_prob(x.flip(-2))]).double(), 0) - math.log(2)
    expected = -(lp - (torch.logsumexp(torch.stack([lb, lt]), 0) - math.log(2))) / (D * LN2)
    assert torch.allclose(comp, expected)


def test_mirror_scores_apply_to_images_only_and_bad_transforms_are_one_line_errors():
    assert "transform-ratio" in applicable_scores(PixelGaussian(SPEC))
    assert "composite-ratio" in applicable_scores(PixelGaussian(SPEC), background=True)
    assert "composite-ratio" not in applicable_scores(PixelGaussian(SPEC))
    cases = [(dict(score="transform-ratio", transforms=["rot45"]), "transform 'rot45': expected one of hflip"),
             (dict(score="transform-ratio", transforms="rot90"), "needs square images; these are 4x6"),
             (dict(score="transform-ratio", transforms=[]), "at least one"),
             (dict(score="transform-ratio", transforms="hflip,hflip"), "twice"),
             (dict(score="composite-ratio"), "needs background=RUN"),
             (dict(score="nll", transforms="hflip"), "takes no option 'transforms'")]
    for kwargs, match in cases:
        with pytest.raises(ConfigError, match=match) as e:
            Detector(PixelGaussian(SPEC), **kwargs)
        assert "\n" not in str(e.value)
    assert check_transforms(" hflip, rot90 ", (3, 5, 5)) == ("hflip", "rot90")


def test_vector_models_have_no_mirror_score():
    class VectorGaussian(PixelGaussian):
        def __init__(self, spec):
            GenerativeModel.__init__(self, spec)
            self.scale = 1.0
            self.register_buffer("mu", torch.zeros(spec.shape))

    vec = VectorGaussian(DataSpec("v", (5,)))
    assert "transform-ratio" not in applicable_scores(vec, background=True)
    with pytest.raises(ConfigError, match="does not apply"):
        Detector(vec, score="transform-ratio")
