"""InfoGAN (Chen et al. 2016): a GAN whose generator is made to use interpretable latent codes.

The generator takes noise z ~ N(0, I_latent) and codes c: a categorical code c_cat, uniform over
``categories`` K values and fed one-hot, and ``continuous`` J codes c_cont ~ Uniform(-1, 1).  InfoGAN
adds to the GAN game the mutual information I(c; G(z, c)) between the codes and the samples,
through the variational lower bound (Barber and Agakov 2003; :mod:`deepgen.losses.information`)

    I(c; G(z, c)) >= L_I(G, Q) = H(c) + E_{c, z} log Q(c | G(z, c)),

    min_{G, Q} max_D  V(D, G) - lambda L_I(G, Q).

Q(c | x) is an auxiliary head on the discriminator's last hidden layer h(x) (one shared body: Q
costs one small MLP, Linear(F, hidden) + LeakyReLU(0.2) + Linear): categorical logits l(x) (K) and
continuous means mu(x) (J), and with ``learn_std`` log-standard deviations log sigma(x) (J, clamped
to [-5, 2]); without it sigma = 1 (the released InfoGAN code's MNIST setting).  Minus the
information term is

    L_info = CE(l(G(z, c)), c_cat) + w * E sum_j -log N(c_cont,j; mu_j, sigma_j^2)

(``info_weight`` = lambda, ``continuous_weight`` = w: the paper uses lambda = 1 for a categorical code
and a smaller weight for continuous ones, whose log-density has another scale).

The players of :mod:`deepgen.training.adversarial` (two; Q goes with the discriminator):

* ``discriminator`` = D's body and logit + the Q head, ``d_steps`` updates:
  L_D = BCE(D(x), 1) + BCE(D(G(z, c)), 0) + lambda L_info(Q on the detached fakes);
* ``generator`` = G: L_G = -E log D(G(z, c)) + lambda L_info(Q on G(z, c)), D and Q frozen.

Q is trained with D because both read the same body: Q's term then also shapes the body's features
(the paper's "Q and D share all convolutional layers"), and G is scored by a Q that is never moved
by G's own update.  The players' parameters are disjoint (``check_players``).

Diagnostics per player: ``d_real``, ``d_fake``, ``cat_nll``, ``cont_nll``, ``cat_accuracy`` (argmax
Q(c | G(z, c)) = c on the batch) and ``mi_bound`` = H(c) - NLL (categorical part; never above log K).

Networks, data scale and sampling are the GAN's (:class:`~deepgen.models.adversarial.gan.GAN`):
discrete images are shown to D as x / (L - 1), G ends in a sigmoid; continuous data standardised.
``sample`` draws random codes; :meth:`InfoGAN.generate_codes` generates with given codes and
:meth:`InfoGAN.code_logits` / :meth:`InfoGAN.infer_codes` read Q's codes of real data.
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.adversarial import discriminator_bce, generator_nonsaturating
from deepgen.losses.information import (
    categorical_code_nll, categorical_entropy, gaussian_code_nll, mutual_information_bound,
)
from deepgen.models.adversarial.gan import ARCHS, GAN
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.players import Player
from deepgen.nets import DCGANDiscriminator

LOG_STD_RANGE = (-5.0, 2.0)


class InfoGAN(GAN):
    """InfoGAN (Chen et al. 2016): GAN + a Q head on D that recovers the generator's codes.

    Parameters: ``latent`` (noise z), ``categories`` (K of the one-hot categorical code; 0: none),
    ``continuous`` (J codes ~ U(-1, 1)), ``info_weight`` (lambda), ``continuous_weight`` (w),
    ``learn_std`` (Q's continuous sigma learned or 1), and the GAN's ``hidden``, ``depth``, ``arch``,
    ``d_steps``, ``context_features``, ``standardize``.
    """

    name = "infogan"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"conditional", "features", "codes", "truncation"})
    description = ("InfoGAN (implicit, no density): GAN + categorical/continuous codes whose mutual information "
                   "with the samples is maximised through a Q head on the discriminator")
    # The GAN's settings (Adam beta1 = 0.5, lr 1e-3, cosine decay; see gan.py), not tuned further: on
    # digits, 3000 steps, seed 0 they give class recovery 0.52 with one prototype per category.
    train_defaults = {"lr": 1e-3, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}

    param_constraints = {"latent": ">= 1", "categories": ">= 0", "continuous": ">= 0", "info_weight": ">= 0",
                         "continuous_weight": ">= 0", "learn_std": (True, False), "hidden": ">= 2",
                         "depth": ">= 1", "arch": ARCHS, "d_steps": ">= 1", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, latent: int = 16, categories: int = 10, continuous: int = 2,
                 info_weight: float = 1.0, continuous_weight: float = 1.0, learn_std: bool = False,
                 hidden: int = 128, depth: int = 2, arch: str = "auto", d_steps: int = 1,
                 context_features: int = 0, standardize: bool = True):
        """Build an InfoGAN for data ``spec``.

        Args:
            latent: dimension of the incompressible noise z ~ N(0, I) fed to the generator.
            categories: K, values of the uniform categorical code (fed one-hot); 0 disables it.
            continuous: J, number of continuous codes, each ~ Uniform(-1, 1); 0 disables them.
            info_weight: lambda, weight of the information term (both players); 0 makes a plain GAN.
            continuous_weight: w, weight of the continuous codes' Gaussian NLL inside the information term.
            learn_std: Q outputs a log-std per continuous code (True) or uses sigma = 1 (False).
            hidden: MLP width (and Q's hidden width); conv: D's channels at H/4 (halved at H/2).
            depth: MLP hidden layers; conv: 1 + extra 3x3 layers per resolution.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            d_steps: discriminator (with Q) updates per generator update.
            context_features: size of the context of a conditional InfoGAN (appended to G's input, shown to D).
            standardize: continuous data: G and D work on (x - mean) / std per feature; samples are mapped back.
        """
        GenerativeModel.__init__(self, spec, latent=latent, categories=categories, continuous=continuous,
                                 info_weight=info_weight, continuous_weight=continuous_weight, learn_std=learn_std,
                                 hidden=hidden, depth=depth, arch=arch, d_steps=d_steps,
                                 context_features=context_features, standardize=standardize)
        if categories == 1:
            raise ConfigError("infogan: categories=1 is a code with one value and carries no information; "
                              "expected 0 (no categorical code) or >= 2")
        if categories == 0 and continuous == 0:
            raise ConfigError("infogan: categories=0 and continuous=0 leave no code; expected at least one code "
                              "(or use model gan)")
        self.categories, self.continuous = int(categories), int(continuous)
        self.info_weight, self.continuous_weight = float(info_weight), float(continuous_weight)
        self.learn_std = bool(learn_std)
        self.d_steps, self.label_smoothing = d_steps, 0.0
        self.build_networks(latent + self.code_dim, hidden, depth, arch, context_features)
        self.latent = latent  # build_networks recorded G's whole input; the noise is only z
        features = self._feature_count()
        q_out = self.categories + self.continuous * (2 if self.learn_std else 1)
        self.q_head = nn.Sequential(nn.Linear(features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, q_out))

    @property
    def code_dim(self) -> int:
        """Width of the codes in G's input: K (one-hot) + J."""
        return self.categories + self.continuous

    # --- the discriminator's body, its logit and Q ----------------------------------
    def _feature_count(self) -> int:
        with torch.no_grad():
            x = torch.zeros(1, *self.spec.shape)
            ctx = torch.zeros(1, self.context_features) if self.context_features else None
            return self.d_features(x, ctx).shape[-1]

    def d_features(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """h(x): the discriminator's last hidden layer (B, F), for inputs on D's scale; D's logit and Q read it."""
        return self.discriminator.features(x_scaled, context)

    def d_logit(self, features: torch.Tensor) -> torch.Tensor:
        """D's logit (B,) from its last hidden layer (with its minibatch features, if D has them)."""
        d = self.discriminator
        if getattr(d, "minibatch", None) is not None:
            features = torch.cat([features, d.minibatch(features)], -1)
        out = d.out if isinstance(d, DCGANDiscriminator) else d.net.out
        return out(features).squeeze(-1)

    def q_outputs(self, features: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Q's outputs from D's last hidden layer: "logits" (B, K) or None, "mean" (B, J) or None,
        "log_std" (B, J) clamped to [-5, 2] with ``learn_std``, else None (sigma = 1)."""
        out = self.q_head(features)
        k, j = self.categories, self.continuous
        logits = out[:, :k] if k else None
        mean = out[:, k:k + j] if j else None
        log_std = out[:, k + j:].clamp(*LOG_STD_RANGE) if (j and self.learn_std) else None
        return {"logits": logits, "mean": mean, "log_std": log_std}

    def discriminate(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.d_logit(self.d_features(x_scaled, context))

    def discriminator_parameters(self):
        """D's body and logit and the Q head: Q is updated with D (see the module docstring)."""
        return list(self.discriminator.parameters()) + list(self.q_head.parameters())

    def players(self) -> list[Player]:
        """``discriminator`` (D + Q, ``d_steps`` updates per step), then ``generator``; Adam with the run's settings."""
        return [Player("discriminator", self.discriminator_parameters, steps=self.d_steps),
                Player("generator", self.generator_parameters)]

    # --- codes ------------------------------------------------------------------------
    def random_codes(self, n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(categorical indices (n,) int64 uniform over K, or None; continuous (n, J) ~ U(-1, 1), or None)."""
        cat = torch.randint(self.categories, (n,), device=self.device) if self.categories else None
        cont = (torch.rand(n, self.continuous, device=self.device) * 2 - 1) if self.continuous else None
        return cat, cont

    def generator_input(self, z: torch.Tensor, categorical: torch.Tensor | None = None,
                        continuous: torch.Tensor | None = None) -> torch.Tensor:
        """[z, one_hot(c_cat), c_cont] (B, latent + K + J); a missing code is checked against K / J."""
        n, parts = len(z), [z]
        if self.categories:
            if categorical is None or tuple(categorical.shape) != (n,):
                raise ConfigError(f"infogan: expected categorical codes of shape ({n},) with values 0..."
                                  f"{self.categories - 1}, got {None if categorical is None else tuple(categorical.shape)}")
            categorical = categorical.to(z.device).long()
            if int(categorical.min()) < 0 or int(categorical.max()) >= self.categories:
                raise ConfigError(f"infogan: categorical codes must lie in 0..{self.categories - 1}")
            parts.append(nn.functional.one_hot(categorical, self.categories).to(z.dtype))
        elif categorical is not None:
            raise ConfigError("infogan: this model has no categorical code (categories=0); pass categorical=None")
        if self.continuous:
            if continuous is None or tuple(continuous.shape) != (n, self.continuous):
                raise ConfigError(f"infogan: expected continuous codes of shape ({n}, {self.continuous}), got "
                                  f"{None if continuous is None else tuple(continuous.shape)}")
            parts.append(continuous.to(z.device, z.dtype))
        elif continuous is not None:
            raise ConfigError("infogan: this model has no continuous codes (continuous=0); pass continuous=None")
        return torch.cat(parts, -1)

    def generate_codes(self, z: torch.Tensor, categorical: torch.Tensor | None = None,
                       continuous: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """G(z, c) on D's scale (in [0, 1] for discrete data) for given noise z (B, latent), categorical
        indices (B,) and continuous codes (B, J) (each None when the model has no such code)."""
        return self.generate(self.generator_input(z, categorical, continuous), context)

    def to_data_scale(self, g: torch.Tensor) -> torch.Tensor:
        """G's output -> the data's scale: floor(L g) for L levels, g s + m for continuous data (see
        :meth:`GAN.from_d_scale`)."""
        return self.from_d_scale(g)

    @torch.no_grad()
    def sample_codes(self, z: torch.Tensor, categorical: torch.Tensor | None = None,
                     continuous: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """Samples on the data's scale for given noise and codes (see :meth:`generate_codes`)."""
        return self.to_data_scale(self.generate_codes(z, categorical, continuous, context))

    def features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """D's last hidden layer h(x) (B, F) for data ``x`` on the data's scale."""
        return self.d_features(self.to_d_scale(x.to(self.device)), self.check_context(context, len(x)))

    @torch.no_grad()
    def infer_codes(self, x: torch.Tensor, context: torch.Tensor | None = None, batch_size: int = 512) -> dict:
        """Q's reading of data ``x`` (data scale): "logits" (N, K) or None, "mean" (N, J) or None,
        "log_std" (N, J) or None; batched, without gradients."""
        parts: list[dict] = []
        for i in range(0, len(x), batch_size):
            c = None if context is None else context[i:i + batch_size]
            parts.append(self.q_outputs(self.features(x[i:i + batch_size], c)))
        return {k: (None if parts[0][k] is None else torch.cat([p[k] for p in parts]))
                for k in ("logits", "mean", "log_std")}

    def code_logits(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Q's categorical logits (N, K) of data ``x``: its code is argmax_c Q(c | x)."""
        if not self.categories:
            raise ConfigError("infogan: this model has no categorical code (categories=0)")
        return self.infer_codes(x, context)["logits"]

    # --- the game ---------------------------------------------------------------------
    def adversarial_forward(self, batch) -> dict:
        """Real data on D's scale, random codes, and fakes G(z, c) (with gradient)."""
        x, context = unpack_batch(batch)
        context = self.check_context(context, len(x))
        cat, cont = self.random_codes(len(x))
        fake = self.generate_codes(self.noise(len(x)), cat, cont, context)
        return {"real": self.to_d_scale(x), "context": context, "fake": fake, "categorical": cat, "continuous": cont}

    def information_terms(self, q: dict, shared: dict) -> dict[str, torch.Tensor]:
        """L_info = CE + w * Gaussian NLL of the shared codes under Q's outputs ``q``, with its parts."""
        zero = shared["fake"].new_zeros(())
        cat_nll = categorical_code_nll(q["logits"], shared["categorical"]) if self.categories else zero
        cont_nll = gaussian_code_nll(q["mean"], shared["continuous"], q["log_std"]) if self.continuous else zero
        out = {"info": cat_nll + self.continuous_weight * cont_nll}
        if self.categories:
            out["cat_nll"] = cat_nll
            out["cat_accuracy"] = (q["logits"].argmax(-1) == shared["categorical"]).float().mean().detach()
            out["mi_bound"] = mutual_information_bound(cat_nll.detach(), categorical_entropy(self.categories))
        if self.continuous:
            out["cont_nll"] = cont_nll
        return out

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``discriminator``: BCE on real and detached fakes + lambda L_info (Q on the detached fakes);
        ``generator``: non-saturating loss + lambda L_info through G(z, c) (D and Q frozen by the adapter).
        Diagnostics: ``d_real``, ``d_fake``, ``cat_nll``, ``cont_nll``, ``cat_accuracy``, ``mi_bound``."""
        context = shared["context"]
        if name == "discriminator":
            real_logits = self.discriminate(shared["real"], context)
            h = self.d_features(shared["fake"].detach(), context)
            fake_logits = self.d_logit(h)
            info = self.information_terms(self.q_outputs(h), shared)
            loss = discriminator_bce(real_logits, fake_logits) + self.info_weight * info["info"]
            return {"loss": loss, "d_real": torch.sigmoid(real_logits).mean().detach(),
                    "d_fake": torch.sigmoid(fake_logits).mean().detach(),
                    **{k: v.detach() for k, v in info.items() if k != "info"}}
        if name == "generator":
            h = self.d_features(shared["fake"], context)
            logits = self.d_logit(h)
            info = self.information_terms(self.q_outputs(h), shared)
            loss = generator_nonsaturating(logits) + self.info_weight * info["info"]
            return {"loss": loss, "d_fake": torch.sigmoid(logits).mean().detach(),
                    **{k: v.detach() for k, v in info.items() if k != "info"}}
        raise ConfigError(f"infogan: no player named {name!r} (players: discriminator, generator)")

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, without gradients: ``loss`` (D's loss with the information
        term), ``g_loss``, ``d_real``, ``d_fake``, ``cat_nll``, ``cont_nll``, ``cat_accuracy``, ``mi_bound``."""
        with torch.no_grad():
            shared = self.adversarial_forward(batch)
            d = self.player_loss("discriminator", batch, shared)
            g = self.player_loss("generator", batch, shared)
        return {**d, "g_loss": g["loss"]}

    # --- protocol -------------------------------------------------------------------
    def log_prob(self, x, context=None):
        raise DensityError(
            "infogan: an InfoGAN is an implicit model and defines no density, so it has no log-likelihood; "
            "judge it by its samples and by how well its categorical code recovers the classes (class_recovery)"
        )

    def sample(self, n, context=None, temperature=1.0, truncation: float | None = None):
        """n samples on the data's scale: G(temperature * z, c) with random codes c ~ p(c) (temperature
        and ``truncation``, |z_i| <= t, act on the noise z only); integers 0..L-1 for discrete data."""
        with torch.no_grad():
            z = self.noise(n, temperature, truncation)
            cat, cont = self.random_codes(n)
            return self.to_data_scale(self.generate_codes(z, cat, cont, context))
