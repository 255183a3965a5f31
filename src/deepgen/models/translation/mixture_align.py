"""Likelihood-based alignment of two mixture densities: learn T(a) = M a + c that carries domain A onto B.

Two unpaired sets of 2-D points, A and B, each a K-component Gaussian mixture; B is (close to) the image
of A under an unknown affine map.  The model fits a density to B and picks the map under which the
mapped A points are most likely, by change of variables:

    log p_A(a) ~= log p_B(T(a)) + log |det M|                      (nats per A point)

Fit (``fit_data``, once, before the gradient steps; numpy float64):

1. A K-component Gaussian mixture (weights w, means mu, covariances S: ``covariance="full"`` or
   ``"spherical"`` S = s^2 I) is fitted to B's training points and to A's by EM, from ``restarts``
   seeded k-means++ initialisations (the best log-likelihood kept; seeds drawn from the global torch
   RNG, so a run's ``--seed`` fixes them).
2. With ``sequences=True`` the training rows are read as one ordered sequence per domain, and an HMM
   with those Gaussian emissions is fitted by Baum-Welch (``hmm_iters`` iterations, scaled forward-backward,
   transitions started from the counts of consecutive hard labels): transition matrices P_A, P_B (rows
   sum to 1); the mixture weights become the mean state occupancies.
3. Matching components, EM-style with hard assignments: for each permutation pi of the K components
   (A's component k -> B's component pi(k); all K! of them for K <= 7), the map is fitted by weighted
   least squares from A's means to B's permuted means,

       (M, c) = argmin sum_k v_k ||M m_k + c - mu_pi(k)||^2,   v_k = 1 / (1 / w^A_k + 1 / w^B_pi(k))

   (``map="affine"``: any M; ``map="similarity"``: M = s R(theta), a rotation and a scale, weighted
   Procrustes), and scored per A point:

       without sequences: (1/N) sum_n log sum_j w^B_j N(T(a_n); mu_j, S_j) + log |det M|
       with sequences:    (1/N) log p_HMM(T(a_1), ..., T(a_N)) + log |det M|

   where the HMM has B's emissions and the transitions P~[pi(k), pi(k)] = h^A_k (A's own holding
   probability, P_A[k, k]) and P~[pi(k), j] = (1 - h^A_k) J^B[pi(k), j] for j != pi(k), with
   J^B[i, j] = P_B[i, j] / sum_{l != i} P_B[i, l] the *jump* part of B's chain (off-diagonal,
   normalised).  Only the jumps are shared by the domains; how long each stays in a component (and so
   the weights) is domain-specific, hence A's holds.  The best-scoring permutation and its map are
   kept.  Above K = 7 (K! too many) candidates come from a Hungarian search instead: from 144
   starting maps (moment matching of A's means onto B's, rotated in 5 degree steps, with and
   without a reflection) alternate the assignment of mapped A means to B means that minimises the
   total squared distance (:func:`scipy.optimize.linear_sum_assignment`) and the weighted least
   squares map; every distinct permutation reached is scored as above.

   Why the sequences matter: with means on a ring (the built-in ``mixtures``), every rotation or
   reflection of the ring's labels fits the means equally well; without sequences only the mixture
   weights and covariances tell them apart, and A's weights need not follow B's; the shared jump
   chain does tell them apart.

Gradient steps (``loss``): the map (and, with ``refine_density``, B's mixture) is refined on

    loss = -(1/n) sum_i [log p_B(T(a_i)) + log |det M|]     (+ -(1/n) sum_i log p_B(b_i) with refine_density)

over a batch's A points a_i (and B points b_i), i.i.d. in shuffled batches: the negative log-likelihood of
A under B's mixture pulled back through T, in nats per point.

Protocol: ``translate(a)`` = T(a) = M a + c; ``translate(b, reverse=True)`` = T^{-1}(b) = M^{-1} (b - c);
``sample(n, context=a)`` = ``translate(a)``; ``log_prob(x)`` = log p_B(x) under the fitted B mixture,
exactly, in nats (a context, the A points of a batch, is accepted and ignored: p_B does not depend on
A).  Data stay on their own scale (no standardisation).  M, c, B's mixture, A's mixture, P_A, P_B, the
chosen permutation and the scores of the best and runner-up candidates are parameters and buffers, saved
with the weights.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError
from deepgen.models.translation.translator import Translator

MAPS = ("affine", "similarity")
COVARIANCES = ("full", "spherical")
MAX_EXHAUSTIVE = 7  # above this many components, K! permutations are too many: Hungarian search instead
_REG = 1e-6  # covariance floor, relative to the data's mean variance
_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- Gaussian mixtures (numpy, float64)


def logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    """log sum exp over ``axis`` (max-shifted; that axis dropped)."""
    m = x.max(axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis, keepdims=True))).squeeze(axis)


def gaussian_log_densities(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(..., N, K): log N(x_n; means_k, covs_k) for points x (..., N, D), means (K, D), covs (K, D, D)."""
    chol = np.linalg.cholesky(np.linalg.inv(covs))  # S^-1 = L L^T: the Mahalanobis term is ||L^T (x - mu)||^2
    _, logdet = np.linalg.slogdet(covs)
    z = np.tensordot(x, chol, axes=([-1], [1])) - np.einsum("kd,kde->ke", means, chol)  # (..., N, K, D)
    maha = (z ** 2).sum(-1)
    return -0.5 * (maha + logdet + means.shape[1] * _LOG_2PI)


def kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ centres (Arthur & Vassilvitskii 2007; greedy as in scikit-learn): the first uniform;
    each next one the best, by the resulting sum of squared distances to the nearest centre, of 2 + ln K
    candidates drawn with probability proportional to the squared distance to the nearest centre so far."""
    trials = 2 + int(math.log(k))
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        cand = rng.choice(len(x), size=trials, p=d2 / total) if total > 0 else rng.integers(len(x), size=trials)
        new = np.minimum(d2, ((x[None] - x[cand][:, None]) ** 2).sum(2))  # (trials, N)
        best = int(new.sum(1).argmin())
        centres.append(x[cand[best]])
        d2 = new[best]
    return np.stack(centres)


def lloyd(x: np.ndarray, centres: np.ndarray, iters: int = 20) -> np.ndarray:
    """Hard labels after ``iters`` Lloyd (k-means) iterations from ``centres`` (an emptied cluster keeps its
    centre)."""
    centres = centres.copy()
    for _ in range(iters):
        labels = ((x[:, None, :] - centres) ** 2).sum(2).argmin(1)
        counts = np.bincount(labels, minlength=len(centres))
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, x)
        moved = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
        if np.allclose(moved, centres):
            break
        centres = moved
    return ((x[:, None, :] - centres) ** 2).sum(2).argmin(1)


def _m_step(x: np.ndarray, resp: np.ndarray, covariance: str, reg: float):
    """Weights, means and covariances from responsibilities resp (N, K)."""
    nk = resp.sum(0) + 1e-12
    means = resp.T @ x / nk[:, None]
    diff = x[:, None, :] - means
    d = x.shape[1]
    if covariance == "full":
        weighted = (resp[:, :, None] * diff).transpose(1, 2, 0)  # (K, D, N)
        covs = weighted @ diff.transpose(1, 0, 2) / nk[:, None, None]
    else:
        var = (resp * (diff ** 2).sum(2)).sum(0) / (d * nk)
        covs = var[:, None, None] * np.eye(d)
    return nk / nk.sum(), means, covs + reg * np.eye(d)


def fit_gmm(x: np.ndarray, k: int, covariance: str, rng: np.random.Generator, restarts: int = 3,
            iters: int = 200, tol: float = 1e-6):
    """EM for a K-component Gaussian mixture on points x (N, D), best of ``restarts`` k-means++ starts.

    E-step r_nk = w_k N(x_n; mu_k, S_k) / sum_j w_j N(x_n; mu_j, S_j); M-step w_k = mean_n r_nk,
    mu_k = sum_n r_nk x_n / sum_n r_nk, S_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / sum_n r_nk + eps I
    (spherical: s_k^2 = that trace / D).  Returns (weights (K,), means (K, D), covs (K, D, D), mean log-likelihood
    per point)."""
    reg = _REG * float(x.var(0).mean() or 1.0)
    best = None
    for _ in range(restarts):
        centres = kmeans_pp(x, k, rng)
        hard = lloyd(x, centres)
        weights, means, covs = _m_step(x, np.eye(k)[hard], covariance, reg)
        # an empty cluster (duplicate points) starts at its k-means++ centre with the data's spread
        empty = np.bincount(hard, minlength=k) < 2
        means[empty] = centres[empty]
        covs[empty] = np.cov(x.T).reshape(x.shape[1], x.shape[1]) + reg * np.eye(x.shape[1])
        prev = -np.inf
        for _ in range(iters):
            joint = gaussian_log_densities(x, means, covs) + np.log(weights + 1e-300)
            ll = logsumexp(joint, axis=1)
            mean_ll = float(ll.mean())
            weights, means, covs = _m_step(x, np.exp(joint - ll[:, None]), covariance, reg)
            if mean_ll - prev < tol:
                break
            prev = mean_ll
        if best is None or mean_ll > best[3]:
            best = (weights, means, covs, mean_ll)
    return best


# --------------------------------------------------------------------------- HMM (numpy, float64)


def forward_log_likelihood(log_e: np.ndarray, trans: np.ndarray, init: np.ndarray) -> np.ndarray:
    """log p(x_1..x_N) of HMMs by the scaled forward recursion, batched over C chains:
    log_e (C, N, K) log emission densities, trans (C, K, K), init (C, K) -> (C,) log-likelihoods."""
    shift = log_e.max(2, keepdims=True)
    e = np.exp(log_e - shift)
    total = shift.sum((1, 2))
    alpha = init * e[:, 0]
    for t in range(1, e.shape[1]):
        s = alpha.sum(1, keepdims=True)
        total += np.log(s[:, 0])
        alpha = np.einsum("ck,ckj->cj", alpha / s, trans) * e[:, t]
    return total + np.log(alpha.sum(1))


def _forward_backward(e: np.ndarray, trans: np.ndarray, init: np.ndarray):
    """Scaled forward-backward on emission likelihoods e (N, K) (each row scaled by its own constant):
    state posteriors gamma (N, K), summed pair posteriors xi (K, K), and sum_t log c_t."""
    n, k = e.shape
    alpha, c = np.empty((n, k)), np.empty(n)
    a = init * e[0]
    for t in range(n):
        if t:
            a = (a @ trans) * e[t]
        c[t] = a.sum()
        a = a / c[t]
        alpha[t] = a
    beta = np.empty((n, k))
    b = np.ones(k)
    beta[-1] = b
    for t in range(n - 2, -1, -1):
        b = trans @ (e[t + 1] * b) / c[t + 1]
        beta[t] = b
    gamma = alpha * beta
    gamma /= gamma.sum(1, keepdims=True)
    xi = trans * (alpha[:-1].T @ (e[1:] * beta[1:] / c[1:, None]))
    return gamma, xi, float(np.log(c).sum())


def fit_hmm(x: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray, covariance: str,
            iters: int = 10):
    """Baum-Welch for a Gaussian-emission HMM on one ordered sequence x (N, D), started from a fitted
    mixture (emissions) and the transition counts of its consecutive hard labels (+1 smoothing).

    Each iteration: forward-backward gives gamma_t(k) = p(z_t = k | x) and xi_t(i, j) = p(z_t = i, z_t+1 = j | x);
    P[i, j] = sum_t xi_t(i, j) / sum_t gamma_t(i) (t < N), emissions as the mixture M-step with r = gamma,
    weights = mean_t gamma_t.  Returns (trans (K, K), weights, means, covs, mean log-likelihood per point)."""
    k = len(weights)
    reg = _REG * float(x.var(0).mean() or 1.0)
    hard = (gaussian_log_densities(x, means, covs) + np.log(weights + 1e-300)).argmax(1)
    counts = np.ones((k, k))
    np.add.at(counts, (hard[:-1], hard[1:]), 1.0)
    trans = counts / counts.sum(1, keepdims=True)
    init = weights.copy()
    mean_ll = -np.inf
    for _ in range(iters):
        log_e = gaussian_log_densities(x, means, covs)
        shift = log_e.max(1, keepdims=True)
        gamma, xi, log_c = _forward_backward(np.exp(log_e - shift), trans, init)
        mean_ll = (log_c + float(shift.sum())) / len(x)
        trans = xi / xi.sum(1, keepdims=True).clip(1e-300)
        init = gamma[0] * 0.5 + 0.5 / k  # one sequence: keep the start distribution away from 0
        weights, means, covs = _m_step(x, gamma, covariance, reg)
    return trans, weights, means, covs, mean_ll


def jump_part(trans: np.ndarray) -> np.ndarray:
    """J[i, j] = P[i, j] / sum_{l != i} P[i, l] for j != i, J[i, i] = 0: where a chain goes when it leaves i."""
    j = trans * (1 - np.eye(len(trans)))
    return j / j.sum(1, keepdims=True).clip(1e-300)


# --------------------------------------------------------------------------- maps from matched means


def fit_map(src: np.ndarray, dst: np.ndarray, v: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(M, c) minimising sum_k v_k ||M src_k + c - dst_k||^2: any M (``affine``) or M = s R with R a rotation
    (``similarity``: weighted Procrustes, Umeyama 1991)."""
    v = v / v.sum()
    d = src.shape[1]
    if kind == "affine":
        x = np.concatenate([src, np.ones((len(src), 1))], 1)
        sw = np.sqrt(v)[:, None]
        theta = np.linalg.lstsq(sw * x, sw * dst, rcond=None)[0]
        return theta[:d].T, theta[d]
    ms, md = v @ src, v @ dst
    cs, cd = src - ms, dst - md
    u, s, vt = np.linalg.svd((v[:, None] * cd).T @ cs)
    sign = np.ones(d)
    sign[-1] = np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0
    rot = (u * sign) @ vt
    var = float(v @ (cs ** 2).sum(1))
    scale = float((s * sign).sum() / var) if var > 0 else 1.0
    return scale * rot, md - scale * rot @ ms


def _hungarian_candidates(ma: np.ndarray, mb: np.ndarray, wa: np.ndarray, wb: np.ndarray, kind: str,
                          iters: int = 30) -> list[tuple[int, ...]]:
    """Permutations reached by alternating Hungarian assignment and the weighted least squares map, from
    moment-matching starts rotated in 5 degree steps, with and without a reflection (2-D)."""
    ca, cb = ma - wa @ ma, mb - wb @ mb
    sa = math.sqrt(float(wa @ (ca ** 2).sum(1)) or 1.0)
    sb = math.sqrt(float(wb @ (cb ** 2).sum(1)) or 1.0)
    found = set()
    for flip in (1.0, -1.0):
        for deg in range(0, 360, 5):
            t = math.radians(deg)
            m = sb / sa * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]) @ np.diag([1.0, flip])
            c = wb @ mb - m @ (wa @ ma)
            perm = None
            for _ in range(iters):
                mapped = ma @ m.T + c
                _, new = linear_sum_assignment(((mapped[:, None, :] - mb[None]) ** 2).sum(2))
                if perm is not None and np.array_equal(new, perm):
                    break
                perm = new
                m, c = fit_map(ma, mb[perm], 1 / (1 / wa + 1 / wb[perm]), kind)
            found.add(tuple(int(i) for i in perm))
    return sorted(found)


def match_components(a: np.ndarray, gmm_a, gmm_b, kind: str, trans_a: np.ndarray | None = None,
                     trans_b: np.ndarray | None = None):
    """The permutation pi (A's component k -> B's pi(k)) and map (M, c) with the best score of the module
    docstring (sequence score when ``trans_a``, ``trans_b`` are given), and the scores of all candidates
    (nats per A point), best first: returns (pi, M, c, sorted scores)."""
    wa, ma, _ = gmm_a
    wb, mb, sb = gmm_b
    k = len(wa)
    if k <= MAX_EXHAUSTIVE:
        perms = list(itertools.permutations(range(k)))
    else:
        perms = _hungarian_candidates(ma, mb, wa, wb, kind)
    perms_arr = np.array(perms)
    maps = [fit_map(ma, mb[p], 1 / (1 / wa + 1 / wb[p]), kind) for p in perms_arr]
    lin = np.stack([m for m, _ in maps])
    off = np.stack([c for _, c in maps])
    log_det = np.log(np.abs(np.linalg.det(lin)).clip(1e-300))
    scores = np.empty(len(perms))
    for lo in range(0, len(perms), 40):  # chunks of candidates: (C, N, K) log densities stay small
        hi = min(lo + 40, len(perms))
        y = np.einsum("nd,ced->cne", a, lin[lo:hi]) + off[lo:hi, None, :]
        log_e = gaussian_log_densities(y, mb, sb)
        if trans_a is None:
            ll = logsumexp(log_e + np.log(wb + 1e-300), axis=2).sum(1)
        else:
            jb = jump_part(trans_b)
            hold = np.diag(trans_a)
            trans = np.empty((hi - lo, k, k))
            for c, p in enumerate(perms_arr[lo:hi]):
                h = np.zeros(k)
                h[p] = hold  # B state p[i] holds with A's probability for its component i
                trans[c] = (1 - h)[:, None] * jb + np.diag(h)
            ll = forward_log_likelihood(log_e, trans, np.full((hi - lo, k), 1.0 / k))
        scores[lo:hi] = ll / len(a) + log_det[lo:hi]
    best = int(np.argmax(scores))
    return perms_arr[best], lin[best], off[best], np.sort(scores)[::-1]


# --------------------------------------------------------------------------- the model


class MixtureAlign(Translator):
    """Likelihood-based aligner of two Gaussian mixtures: T(a) = M a + c fitted by EM + permutation search
    (with the HMM transition structure when ``sequences``), refined by gradient steps; log_prob = log p_B."""

    name = "mixture-align"
    description = ("likelihood-based alignment of mixture densities (2-D translation): EM mixtures of A and B "
                   "(HMMs with sequences), best component matching over permutations, affine map refined on "
                   "-log p_B(T(a)) - log|det M|")
    density = "exact"
    objective = "likelihood"
    capabilities = frozenset({"translate", "fit_data", "log_prob"})
    bidirectional = True
    data_shapes = frozenset({"vector"})
    train_defaults = {"lr": 1e-3, "lr_schedule": "cosine", "warmup_steps": 0}
    param_constraints = {"components": ">= 2", "map": MAPS, "covariance": COVARIANCES, "sequences": (True, False),
                         "restarts": ">= 1", "em_iters": ">= 1", "hmm_iters": ">= 1",
                         "refine_density": (True, False)}

    def __init__(self, spec: DataSpec, components: int = 5, map: str = "affine", covariance: str = "full",
                 sequences: bool = True, restarts: int = 3, em_iters: int = 200, hmm_iters: int = 10,
                 refine_density: bool = False):
        """Build the aligner for 2-D continuous translation data ``spec``.

        Args:
            components: K, the number of Gaussian components of each domain's mixture.
            map: "affine" (T(a) = M a + c, any invertible M) or "similarity" (M = s R(theta)).
            covariance: "full" or "spherical" (s_k^2 I) component covariances.
            sequences: read the training rows as ordered sequences: fit HMMs and score matches with the
                shared jump structure of the chains (False: i.i.d. points, mixture likelihood only).
            restarts: k-means++ starts of EM per domain (the best log-likelihood is kept).
            em_iters: the most EM iterations per start.
            hmm_iters: Baum-Welch iterations per domain (with sequences).
            refine_density: also refine B's mixture in the gradient steps (adds -log p_B(b) of the batch's B
                points to the loss); off: B's mixture stays the EM/Baum-Welch fit.
        """
        super().__init__(spec, components=components, map=map, covariance=covariance, sequences=sequences,
                         restarts=restarts, em_iters=em_iters, hmm_iters=hmm_iters, refine_density=refine_density)
        if spec.levels is not None or tuple(spec.shape) != (2,):
            kind = f"{spec.levels} levels" if spec.levels is not None else "continuous"
            raise ConfigError(f"{self.name}: aligns 2-D continuous points (shape (2,)); data '{spec.name}' has "
                              f"shape {tuple(spec.shape)} ({kind}); use the mixtures task or your own 2-D points")
        if map == "affine" and components < 3:
            raise ConfigError(f"{self.name}: map=affine needs components >= 3 (three means fix an affine map of the "
                              f"plane), got components={components}; use map=similarity or more components")
        k = int(components)
        self.k, self.map_kind, self.covariance = k, map, covariance
        self.sequences, self.refine_density = bool(sequences), bool(refine_density)
        self.restarts, self.em_iters, self.hmm_iters = int(restarts), int(em_iters), int(hmm_iters)
        # the map
        self.offset = nn.Parameter(torch.zeros(2))
        if map == "affine":
            self.linear = nn.Parameter(torch.eye(2))
        else:
            self.log_scale = nn.Parameter(torch.zeros(()))
            self.angle = nn.Parameter(torch.zeros(()))
        # B's mixture: logits, means and Cholesky factors (full: lower triangle, log diagonal; spherical: log std)
        ring = 2 * math.pi * torch.arange(k) / k
        self.b_logits = nn.Parameter(torch.zeros(k), requires_grad=self.refine_density)
        self.b_means = nn.Parameter(torch.stack([ring.cos(), ring.sin()], 1), requires_grad=self.refine_density)
        raw = torch.zeros(k, 2, 2) if covariance == "full" else torch.zeros(k)
        self.b_scale_raw = nn.Parameter(raw, requires_grad=self.refine_density)
        # the record of the fit (buffers: saved with the weights)
        self.register_buffer("a_weights", torch.full((k,), 1.0 / k))
        self.register_buffer("a_means", torch.zeros(k, 2))
        self.register_buffer("a_covs", torch.eye(2).repeat(k, 1, 1))
        self.register_buffer("trans_a", torch.full((k, k), 1.0 / k))
        self.register_buffer("trans_b", torch.full((k, k), 1.0 / k))
        self.register_buffer("matching", torch.arange(k))  # A's component k -> B's component matching[k]
        self.register_buffer("match_scores", torch.full((2,), float("nan")))  # best and runner-up, nats / A point

    # --- the map ------------------------------------------------------------------------
    def linear_map(self) -> torch.Tensor:
        """M (2, 2): the parameter (affine) or exp(log_scale) R(angle) (similarity)."""
        if self.map_kind == "affine":
            return self.linear
        c, s = torch.cos(self.angle), torch.sin(self.angle)
        return torch.exp(self.log_scale) * torch.stack([torch.stack([c, -s]), torch.stack([s, c])])

    def log_abs_det(self) -> torch.Tensor:
        """log |det M|."""
        if self.map_kind == "similarity":
            return 2 * self.log_scale
        return torch.linalg.slogdet(self.linear)[1]

    def generate(self, h: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """T(h) = M h + c, or T^{-1}(h) = M^{-1} (h - c) with ``reverse`` (rows h (n, 2))."""
        m = self.linear_map()
        if reverse:
            return torch.linalg.solve(m, (h - self.offset).T).T
        return h @ m.T + self.offset

    # --- B's mixture ---------------------------------------------------------------------
    def b_cholesky(self) -> torch.Tensor:
        """(K, 2, 2) lower-triangular Cholesky factors L_k of B's covariances S_k = L_k L_k^T."""
        raw = self.b_scale_raw
        if self.covariance == "spherical":
            return torch.exp(raw)[:, None, None] * torch.eye(2, device=raw.device, dtype=raw.dtype)
        diag = torch.diag_embed(torch.exp(torch.diagonal(raw, dim1=-2, dim2=-1)))
        return torch.tril(raw, -1) + diag

    def log_prob_b(self, x: torch.Tensor) -> torch.Tensor:
        """log p_B(x) = log sum_k w_k N(x; mu_k, L_k L_k^T) per row (nats)."""
        chol = self.b_cholesky()
        diff = (x[:, None, :] - self.b_means).unsqueeze(-1)  # (n, K, 2, 1)
        z = torch.linalg.solve_triangular(chol.expand(len(x), -1, -1, -1), diff, upper=False).squeeze(-1)
        log_norm = -0.5 * z.pow(2).sum(-1) - torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1) - _LOG_2PI
        return torch.logsumexp(torch.log_softmax(self.b_logits, 0) + log_norm, 1)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """log p_B(x) per row in nats (exact); a context (A points) is checked and ignored."""
        if context is not None:
            self.check_context(context, len(x))
        return self.log_prob_b(x.to(self.device).float())

    # --- fitting ----------------------------------------------------------------------------
    @torch.no_grad()
    def fit_data(self, splits) -> dict:
        """Fit both mixtures (HMMs with ``sequences``), choose the component matching and map (module docstring)
        and store them; returns a summary (scores in nats per A point)."""
        tr = getattr(splits, "translation", None)
        if tr is None or "train" not in tr.source:
            raise ConfigError(f"{self.name}: data '{splits.spec.name}' is not a translation task (it has no "
                              "domain-A points); use a 2-D translation dataset such as mixtures")
        b = splits.train.detach().double().cpu().numpy()
        a = tr.source["train"].detach().double().cpu().numpy()
        for what, x in (("domain A", a), ("domain B", b)):
            if x.ndim != 2 or x.shape[1] != 2 or len(x) < 2 * self.k:
                raise ConfigError(f"{self.name}: {what} of '{splits.spec.name}' has {tuple(x.shape)} training "
                                  f"points; need (N, 2) with N >= {2 * self.k} (2 per component)")
        seed = int(torch.randint(0, 2 ** 31 - 1, ()).item())
        rng = np.random.default_rng(seed)
        gmm_a = fit_gmm(a, self.k, self.covariance, rng, self.restarts, self.em_iters)
        gmm_b = fit_gmm(b, self.k, self.covariance, rng, self.restarts, self.em_iters)
        trans_a = trans_b = None
        if self.sequences:
            trans_a, *gmm_a = fit_hmm(a, *gmm_a[:3], self.covariance, self.hmm_iters)
            trans_b, *gmm_b = fit_hmm(b, *gmm_b[:3], self.covariance, self.hmm_iters)
        perm, m, c, scores = match_components(a, gmm_a[:3], gmm_b[:3], self.map_kind, trans_a, trans_b)
        self._store(gmm_a[:3], gmm_b[:3], trans_a, trans_b, perm, m, c, scores)
        return {"matching": perm.tolist(), "score": float(scores[0]),
                "runner_up": float(scores[1]) if len(scores) > 1 else None, "candidates": len(scores)}

    def _store(self, gmm_a, gmm_b, trans_a, trans_b, perm, m, c, scores) -> None:
        def t(v):
            return torch.as_tensor(np.asarray(v), dtype=self.offset.dtype, device=self.device)

        wb, mb, sb = gmm_b
        self.offset.copy_(t(c))
        if self.map_kind == "affine":
            self.linear.copy_(t(m))
        else:
            scale = math.sqrt(abs(np.linalg.det(m)))
            self.log_scale.fill_(math.log(scale))
            self.angle.fill_(math.atan2(m[1, 0], m[0, 0]))
        self.b_logits.copy_(t(np.log(wb + 1e-300)))
        self.b_means.copy_(t(mb))
        if self.covariance == "full":
            chol = np.linalg.cholesky(sb)
            idx = np.arange(2)
            chol[:, idx, idx] = np.log(chol[:, idx, idx])
            self.b_scale_raw.copy_(t(chol))
        else:
            self.b_scale_raw.copy_(t(0.5 * np.log(sb[:, 0, 0])))
        self.a_weights.copy_(t(gmm_a[0]))
        self.a_means.copy_(t(gmm_a[1]))
        self.a_covs.copy_(t(gmm_a[2]))
        if trans_a is not None:
            self.trans_a.copy_(t(trans_a))
            self.trans_b.copy_(t(trans_b))
        self.matching.copy_(torch.as_tensor(perm, dtype=torch.long))
        self.match_scores.copy_(t([scores[0], scores[1] if len(scores) > 1 else float("nan")]))

    # --- objective ------------------------------------------------------------------------
    def loss(self, batch) -> dict[str, torch.Tensor]:
        """-(1/n) sum_i [log p_B(T(a_i)) + log |det M|] over the batch's A points (nats per point); with
        ``refine_density`` plus -(1/n) sum_i log p_B(b_i) over its B points."""
        b, a = self.unpack(batch)
        log_det = self.log_abs_det()
        nll_mapped = -(self.log_prob_b(self.generate(a)) + log_det).mean()
        out = {"nll_mapped": nll_mapped.detach(), "log_det": log_det.detach()}
        loss = nll_mapped
        if self.refine_density:
            nll_b = -self.log_prob_b(b.to(self.device).float()).mean()
            out["nll_b"] = nll_b.detach()
            loss = loss + nll_b
        out["loss"] = loss
        return out
