"""Built-in translation tasks A -> B with a known map T (nothing downloaded, identical in every run).

Each task is a :class:`Splits` whose train/val/test tensors are domain B and whose ``translation``
(:class:`~deepgen.data.spec.Translation`) holds domain A, the truth T(A) and the labels of A's rows.

Digits tasks (8x8, 17 levels 0..16, classes "0".."9"; built from the splits of ``digits``):

- ``edges2digits`` (paired): A = :func:`edge_map` of the digit, B = the digit.  The Sobel
  gradients g_x = S * x, g_y = S^T * x (S = [[-1,0,1],[-2,0,2],[-1,0,1]], zero padding) give
  E = min(L-1, round(sqrt(g_x^2 + g_y^2) / 4)): a step of height L-1 becomes an edge of level L-1.
- ``lowres2digits`` (paired): A = :func:`lowres` of the digit: 2x2 average pooling to 4x4, nearest
  upsampling back to 8x8, rounded (half up) to the levels, so A and B share one DataSpec.
- ``digits2thick`` (unpaired): each digits split is cut in two halves by a seeded permutation
  (one row dropped if odd); A = the first half, B = :func:`thicken` (T) of the second half, so A and B
  rows are different digits; truth = T(A).  T is grey dilation by a cross:
  T(x)[i, j] = max(x[i, j], x[i±1, j], x[i, j±1]).

Paired tasks keep the digits' row order; truth = B, and the labels of A and B are the same digit.

``mixtures`` (2-D, continuous, unpaired): see :class:`MixtureTask`.  Domain A is a K = 5 component
isotropic Gaussian mixture on a ring; B = T(A's mixture) for an affine T(x) = M x + c, M = s R(theta),
with its own component weights.  Both domains are *sequences*: within each split the rows follow
a Markov chain over the components (rows in chain order), with a jump chain Q shared by A and B (the
"syntax") and domain-specific holding probabilities (hence weights).  Labels of B rows and
``source_labels`` of A rows are the component ids; component k of B is T(component k of A), so a correct
alignment maps A's component k onto B's component k.  truth = T(A).
"""

from __future__ import annotations

import bisect
import math
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepgen.data.digits import load_digits_images
from deepgen.data.spec import SPLITS, DataSpec, Splits, Translation

_DIGITS_LEVELS = 17
MIXTURE_SIZES = {"train": 10000, "val": 2000, "test": 2000}
MIXTURE_K = 5

TASKS = {
    "edges2digits": "translation, paired: A = Sobel edge magnitude of a digit (quantised to 0..16), B = the digit; "
                    "8x8, 17 levels; 1257/270/270; 10 classes (digits 0-9)",
    "lowres2digits": "translation, paired: A = digit average-pooled to 4x4, upsampled back to 8x8 (nearest) and "
                     "rounded to 0..16 (same 8x8 17-level spec as B), B = the digit; 1257/270/270; 10 classes",
    "digits2thick": "translation, unpaired: A = half of each digits split, B = T(the other half), T = grey dilation "
                    "by a 3x3 cross; 8x8, 17 levels; 628/135/135 per domain; 10 classes",
    "mixtures": "translation, unpaired 2-D: A = 5-component Gaussian mixture on a ring, B = unknown rotation/scale/"
                "shift of it with its own weights; rows follow a Markov chain over components; 10000/2000/2000; "
                "5 classes (components)",
}


# --------------------------------------------------------------------------- the maps


def edge_map(x: torch.Tensor, levels: int = _DIGITS_LEVELS) -> torch.Tensor:
    """Quantised Sobel edge magnitude of images (N, C, H, W) with values 0..L-1, per channel:
    E = min(L-1, round(sqrt(g_x^2 + g_y^2) / 4)), zero padding (see the module docstring)."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype)
    c = x.shape[1]
    w = torch.stack([kx, kx.T]).unsqueeze(1).repeat(c, 1, 1, 1)  # (2C, 1, 3, 3): g_x, g_y of each channel
    g = F.conv2d(x, w, padding=1, groups=c).unflatten(1, (c, 2))
    mag = g.pow(2).sum(2).sqrt()
    return torch.floor(mag / 4 + 0.5).clamp_(max=levels - 1)


def lowres(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``factor`` x ``factor`` average pooling, nearest upsampling back to (H, W), rounded half up to integers
    (for integer levels: the result stays in 0..L-1)."""
    pooled = F.avg_pool2d(x, factor)
    return torch.floor(F.interpolate(pooled, scale_factor=factor, mode="nearest") + 0.5)


def thicken(x: torch.Tensor) -> torch.Tensor:
    """Grey dilation by a cross: T(x)[i, j] = max(x[i, j], x[i-1, j], x[i+1, j], x[i, j-1], x[i, j+1])
    (outside the image counts as 0 ink; values stay on the input's levels)."""
    p = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    shifted = [p[..., 1:h + 1, 1:w + 1], p[..., :h, 1:w + 1], p[..., 2:, 1:w + 1], p[..., 1:h + 1, :w],
               p[..., 1:h + 1, 2:]]
    return torch.stack(shifted).amax(0)


# --------------------------------------------------------------------------- digits tasks


def _seed(*parts: object) -> int:
    """A fixed seed from names (same in every process)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def _spec(name: str) -> DataSpec:
    return DataSpec(name, (1, 8, 8), _DIGITS_LEVELS, TASKS[name])


def _paired_digits(name: str, to_a, domain_a: str, what: str) -> Splits:
    """B = the digits splits, A = ``to_a``(B) row by row; truth = B; A keeps B's labels."""
    d = load_digits_images()
    b = {s: d.split(s) for s in SPLITS}
    tr = Translation(paired=True, source={s: to_a(b[s]) for s in SPLITS}, truth=dict(b),
                     source_labels=dict(d.labels), domains=(domain_a, "digits"), description=what)
    return Splits(_spec(name), **b, labels=dict(d.labels), classes=d.classes, translation=tr)


def _digits2thick() -> Splits:
    """Unpaired: A = first half of a seeded permutation of each split, B = thicken(second half)."""
    d = load_digits_images()
    a, b, ya, yb = {}, {}, {}, {}
    for s in SPLITS:
        x, y = d.split(s), d.labels[s]
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(_seed("digits2thick", s)))
        n = len(x) // 2
        ia, ib = perm[:n].sort().values, perm[n:2 * n].sort().values
        a[s], ya[s], b[s], yb[s] = x[ia], y[ia], thicken(x[ib]), y[ib]
    tr = Translation(paired=False, source=a, truth={s: thicken(a[s]) for s in SPLITS}, source_labels=ya,
                     domains=("digits", "thick digits"),
                     description="T = grey dilation by a 3x3 cross; A and B rows are different digits")
    return Splits(_spec("digits2thick"), **b, labels=yb, classes=d.classes, translation=tr)


# --------------------------------------------------------------------------- mixtures


@dataclass(frozen=True)
class MixtureTask:
    """Two K-component Gaussian mixtures related by an affine map, sampled as Markov-chain sequences.

    Domain A: component k is N(means[k], std^2 I).  Domain B: component k is the image of A's under
    T(x) = M x + c with M = scale * R(angle), i.e. N(M means[k] + c, scale^2 std^2 I).

    Components follow a Markov chain in each domain: P_d = diag(h_d) + diag(1 - h_d) Q, where
    Q (``jump``, zero diagonal, rows sum to 1) is shared by A and B and h_d (``hold_a``, ``hold_b``)
    is each domain's probability of staying in a component.  The weights of each mixture are the
    stationary distribution of its chain, pi_d[k] ∝ rho[k] / (1 - h_d[k]) with rho Q = rho, so they differ.
    """

    means: torch.Tensor  # (K, 2) float64, A's component means
    std: float  # A's component standard deviation
    jump: torch.Tensor  # (K, K) float64, Q
    hold_a: torch.Tensor  # (K,) float64
    hold_b: torch.Tensor  # (K,) float64
    angle: float  # radians
    scale: float
    shift: torch.Tensor  # (2,) float64, c

    @property
    def k(self) -> int:
        """Number of components K."""
        return len(self.means)

    @property
    def linear(self) -> torch.Tensor:
        """M = scale * [[cos, -sin], [sin, cos]] (float64)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.scale * torch.tensor([[c, -s], [s, c]], dtype=torch.float64)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) = M x + c for rows x (n, 2), in x's dtype."""
        return (x.double() @ self.linear.T + self.shift).to(x.dtype)

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """T^-1(y) = M^-1 (y - c) for rows y (n, 2), in y's dtype."""
        return ((y.double() - self.shift) @ torch.linalg.inv(self.linear).T).to(y.dtype)

    def _check_domain(self, domain: str) -> None:
        if domain not in ("A", "B"):
            raise ValueError(f"domain {domain!r}: expected 'A' or 'B'")

    def transition(self, domain: str) -> torch.Tensor:
        """P_d[i, j] = Pr(next component j | component i) in domain 'A' or 'B' (float64, rows sum to 1)."""
        self._check_domain(domain)
        h = self.hold_a if domain == "A" else self.hold_b
        return torch.diag(h) + (1 - h)[:, None] * self.jump

    def weights(self, domain: str) -> torch.Tensor:
        """The mixture weights of domain 'A' or 'B': the stationary distribution pi P = pi of its chain."""
        p = self.transition(domain)
        a = p.T - torch.eye(self.k, dtype=p.dtype)
        a[-1] = 1.0  # replace one (redundant) balance equation by sum(pi) = 1
        b = torch.zeros(self.k, dtype=p.dtype)
        b[-1] = 1.0
        return torch.linalg.solve(a, b)

    def component_means(self, domain: str) -> torch.Tensor:
        """(K, 2) means: A's, or T(A's) for B."""
        self._check_domain(domain)
        return self.means if domain == "A" else self.apply(self.means)

    def component_covs(self, domain: str) -> torch.Tensor:
        """(K, 2, 2) covariances: std^2 I for A, M std^2 I M^T = (scale std)^2 I for B."""
        self._check_domain(domain)
        cov = self.std ** 2 * torch.eye(2, dtype=torch.float64)
        if domain == "B":
            cov = self.linear @ cov @ self.linear.T
        return cov.expand(self.k, 2, 2).clone()

    def joint_log_prob(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """(n, K): log pi_d[k] + log N(x; mean_k, cov_k) in domain 'A' or 'B' (float64)."""
        dist = torch.distributions.MultivariateNormal(self.component_means(domain), self.component_covs(domain))
        return dist.log_prob(x.double()[:, None, :]) + self.weights(domain).log()

    def classify(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        """Most probable component of each row (int64, (n,)) under domain 'A' or 'B''s mixture."""
        return self.joint_log_prob(x, domain).argmax(1)

    def sample_sequence(self, domain: str, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n rows (float32 (n, 2)) of one chain of domain 'A' or 'B' started from its stationary distribution,
        and their components (int64 (n,)); B's rows are T(A-component draws)."""
        cum = self.transition(domain).cumsum(1).tolist()
        first = self.weights(domain).cumsum(0).tolist()
        u = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
        k, ks = 0, []
        for t, ut in enumerate(u):
            k = min(bisect.bisect_right(first if t == 0 else cum[k], ut), self.k - 1)
            ks.append(k)
        comp = torch.tensor(ks, dtype=torch.int64)
        z = self.means[comp] + self.std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x = z if domain == "A" else self.apply(z)
        return x.float(), comp


def mixture_task(seed: int = 0) -> MixtureTask:
    """The mixture alignment task; ``seed=0`` is the built-in ``mixtures`` dataset's.

    K = 5 means on the circle of radius 2 at angles 2 pi k / K, std 0.3 (so the means alone leave T
    ambiguous up to the ring's rotations); drawn from ``seed``: the jump chain Q (rows proportional to
    u^4 + 0.02 off the diagonal, u uniform: most mass on one or two successors), the holding
    probabilities h_A, h_B uniform in [0.1, 0.6], the angle uniform in [0.35, 0.9] rad, the scale uniform in
    [1.3, 1.7] and the shift uniform in [-1.5, 1.5]^2.
    """
    g = torch.Generator().manual_seed(_seed("mixtures", seed))
    k = MIXTURE_K
    theta = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    means = 2.0 * torch.stack([theta.cos(), theta.sin()], 1)
    q = torch.rand(k, k, generator=g, dtype=torch.float64).pow(4) + 0.02
    q.fill_diagonal_(0.0)
    q = q / q.sum(1, keepdim=True)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

    return MixtureTask(means=means, std=0.3, jump=q, hold_a=uniform(0.1, 0.6, k), hold_b=uniform(0.1, 0.6, k),
                       angle=float(uniform(0.35, 0.9, 1)), scale=float(uniform(1.3, 1.7, 1)),
                       shift=uniform(-1.5, 1.5, 2))


def load_mixtures(seed: int = 0) -> Splits:
    """The ``mixtures`` dataset of :func:`mixture_task` (``seed``): B rows in the splits, A in ``translation``."""
    task = mixture_task(seed)
    a, b, ya, yb = {}, {}, {}, {}
    for s in SPLITS:
        a[s], ya[s] = task.sample_sequence("A", MIXTURE_SIZES[s], torch.Generator().manual_seed(_seed("mixtures", seed, "A", s)))
        b[s], yb[s] = task.sample_sequence("B", MIXTURE_SIZES[s], torch.Generator().manual_seed(_seed("mixtures", seed, "B", s)))
    what = (f"T(x) = M x + c, M = {task.scale:.3f} R({math.degrees(task.angle):.1f} deg), "
            f"c = ({task.shift[0]:.3f}, {task.shift[1]:.3f}); rows in Markov-chain order")
    tr = Translation(paired=False, source=a, truth={s: task.apply(a[s]) for s in SPLITS}, source_labels=ya,
                     domains=("mixture A", "mixture B"), description=what)
    name = "mixtures" if seed == 0 else f"mixtures-{seed}"
    return Splits(DataSpec(name, (2,), None, TASKS["mixtures"]), **b, labels=yb,
                  classes=tuple(str(i) for i in range(task.k)), translation=tr)


def load_translation_task(name: str) -> Splits | None:
    """The built-in translation task ``name`` (see :data:`TASKS`), or None if there is none of that name."""
    if name == "edges2digits":
        return _paired_digits(name, edge_map, "edges", "T = the digit whose quantised Sobel edge map is A")
    if name == "lowres2digits":
        return _paired_digits(name, lowres, "4x4 digits",
                              "T = super-resolution of a 4x4 average-pooled digit (shown 8x8, nearest) to 8x8")
    if name == "digits2thick":
        return _digits2thick()
    if name == "mixtures":
        return load_mixtures()
    return None
