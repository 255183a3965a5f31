"""Multi-agent diverse GAN (MAD-GAN; Ghosh et al. 2018): an implicit model.

k generators G_1..G_k and one discriminator with k + 1 softmax outputs: D_i(x)
is D's probability that x was made by generator i, D_{k+1}(x) that it is real.

* The discriminator minimises the cross-entropy of the right class
  (:func:`~deepgen.losses.multiclass.multiclass_discriminator_loss`),

      L_D = -E_x log D_{k+1}(x) - (1/k) sum_i E_z log D_i(G_i(z));

  its optimum gives D*_{k+1} = p_data / (p_data + p_g) for the mixture
  p_g = (1/k) sum_i p_{G_i} and D*_i proportional to p_{G_i}.
* Each generator maximises log D_{k+1}(G_i(z)) (non-saturating;
  :func:`~deepgen.losses.multiclass.multiclass_generator_loss`):

      L_G = -(1/k) sum_i E_z log D_{k+1}(G_i(z)).

For the real class the game is the GAN's for the mixture p_g, but D must also
say *which* generator made each fake: its features are trained to separate the
generators, and D_{k+1} rises only where no generator is (Ghosh et al.,
Theorem 1: at the equilibrium the mixture p_g equals p_data).  In practice the
generators specialise on different modes, and the mixture covers modes a
single GAN drops.  The model is the uniform mixture: ``sample`` draws
i ~ U{1..k}, z ~ N(0, I) and returns G_i(z).

Parameter sharing (``share``, default, the paper's variant for similar
generators): one network takes [z, onehot(i)] (the generator's index appended to
the noise), so the k generators share all weights but the input layer's columns
of the one-hot code.  ``share: false`` builds k separate networks
(``nn.ModuleList``).

Each training step makes fakes for all generators in one shared pass
(``fake_batch``: "each": every generator makes a batch as large as the real one,
as in the paper, k B fakes in all; "split": B fakes in all, generator i making
every k-th), then ``d_steps`` discriminator updates and one update of all
generators together (one player).

Networks, data scale and sampling scale are the GAN's
(:class:`~deepgen.models.adversarial.gan.GAN`): MLPs for vectors (D with
LeakyReLU(0.2)), the DCGAN pair for images with D's output layer widened to
k + 1 logits; ``context_features`` > 0 makes every generator and D conditional
(the context is appended to [z, onehot(i)] and shown to D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.errors import ConfigError, DensityError
from deepgen.losses.multiclass import multiclass_discriminator_loss, multiclass_generator_loss
from deepgen.models.adversarial.gan import ARCHS, GAN
from deepgen.models.base import GenerativeModel, unpack_batch
from deepgen.models.players import Player
from deepgen.nets import DCGANGenerator, FlatMLP

FAKE_BATCHES = ("each", "split")


class MADGAN(GAN):
    """MAD-GAN (Ghosh et al. 2018): k generators and a (k+1)-way discriminator that names the generator.

    Parameters: ``generators`` (k >= 2), ``share`` (one network fed [z, onehot(i)],
    or k networks), ``fake_batch`` ("each" / "split"), ``latent``, ``hidden``,
    ``depth``, ``arch``, ``d_steps`` as for ``gan``, ``context_features``.
    """

    name = "mad-gan"
    family = "implicit"
    density = "none"
    objective = "adversarial"
    capabilities = frozenset({"conditional"})
    description = "MAD-GAN (implicit, no density): k generators, a (k+1)-way discriminator that names the generator"
    # Merged under the user's fields by TrainConfig.from_dict.  The GAN's settings (Adam(0.5, 0.999),
    # lr 1e-3, cosine to 0, no warm-up: see gan.py); the model's defaults (k = 4, shared, "each") are
    # the best of these single-seed runs, 2000 steps, batch 128 unless said (modes covered, % high quality):
    # * ring8: k=4 shared "each" 5/8, 29.2 %; k=8 shared "each" 1/8, 1.8 %; k=8 separate "each" 1/8, 9.0 %.
    #   With k < 8 each (continuous) generator strings several modes together; with k = 8 the generators
    #   start alike and D cannot tell them apart (generator_accuracy near chance), so they move as one.
    # * grid25: no setting got near the target: k=25 shared "each" 0/25, 2.9 %; "split" 0/25, 1.2 %
    #   (batch 512: 0/25, 2.0 %); k=25 separate "split" batch 512 3/25, 2.8 %; k=8 shared 1/25, 0.4 %
    #   ("split": 0/25, 1.4 %); the GAN itself gets 1/25, 0.7 % (seed 0).  The samples spread over the
    #   square or form blurred bumps: 2000 steps do not resolve 25 modes 3 std = 0.15 wide.
    train_defaults = {"lr": 1e-3, "betas": [0.5, 0.999], "lr_schedule": "cosine", "warmup_steps": 0}

    param_constraints = {"generators": ">= 2", "fake_batch": FAKE_BATCHES, "latent": ">= 1", "hidden": ">= 2",
                         "depth": ">= 1", "arch": ARCHS, "d_steps": ">= 1", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, generators: int = 4, share: bool = True, fake_batch: str = "each",
                 latent: int = 16, hidden: int = 128, depth: int = 2, arch: str = "auto", d_steps: int = 1,
                 context_features: int = 0, standardize: bool = True):
        """Build a MAD-GAN for data ``spec``.

        Args:
            generators: k, the number of generators (at least 2); D has k + 1 outputs.
            share: one generator network fed [z, onehot(i)] (parameter sharing); false: k separate networks.
            fake_batch: "each": every generator makes a full batch of fakes per step (k B in all); "split": B in all.
            latent: dimension of the noise z ~ N(0, I) fed to the generators.
            hidden: MLP width; for the conv pair, the channels at H/4 (halved at H/2).
            depth: MLP hidden layers; conv: 1 + extra 3x3 layers per resolution.
            arch: "auto" (conv for images, mlp for vectors), "mlp" or "conv".
            d_steps: discriminator updates per generator update.
            context_features: size of the context vector of a conditional MAD-GAN (appended to z, shown to D).
            standardize: continuous data: G and D work on (x - mean) / std per feature; samples are mapped back.
        """
        if not isinstance(generators, int) or isinstance(generators, bool) or generators < 2:
            raise ConfigError(f"mad-gan: generators must be an integer >= 2 (k generators and a (k+1)-way "
                              f"discriminator), got {generators!r}")
        # GAN.__init__ would record the GAN's own parameters (loss, label_smoothing), so go to the base.
        GenerativeModel.__init__(self, spec, generators=generators, share=share, fake_batch=fake_batch,
                                 latent=latent, hidden=hidden, depth=depth, arch=arch, d_steps=d_steps,
                                 context_features=context_features, standardize=standardize)
        if fake_batch not in FAKE_BATCHES:
            raise ConfigError(f"mad-gan: fake_batch must be one of {', '.join(FAKE_BATCHES)}, got {fake_batch!r}")
        self.k, self.share, self.fake_batch, self.d_steps = generators, bool(share), fake_batch, d_steps
        self.build_networks(latent, hidden, depth, arch, context_features)

    def build_networks(self, latent: int, hidden: int, depth: int, arch: str, context_features: int) -> None:
        """The GAN's pair with k generators (shared: one net on [z, onehot(i)]; else a ModuleList)
        and a discriminator with k + 1 outputs."""
        super().build_networks(latent, hidden, depth, arch, context_features)
        k, shape = self.k, tuple(self.spec.shape)
        conv = isinstance(self.generator, DCGANGenerator)

        def make_generator(inputs: int) -> nn.Module:
            if conv:
                return DCGANGenerator(inputs, shape, hidden, depth, context_features)
            return FlatMLP(inputs, shape, hidden, depth, context_features)

        if self.share:
            self.generator = make_generator(latent + k)
        else:
            self.generator = nn.ModuleList(make_generator(latent) for _ in range(k))
        if conv:
            self.discriminator.out = nn.Linear(self.discriminator.out.in_features, k + 1)
        else:
            self.discriminator = FlatMLP(self.spec.dim, (k + 1,), hidden, depth, context_features, leaky_slope=0.2)

    # --- generators and discriminator ---------------------------------------------
    def generate(self, z: torch.Tensor, context: torch.Tensor | None = None,
                 index: torch.Tensor | int | None = None) -> torch.Tensor:
        """G_{index_j}(z_j) on D's scale, for 0-based generator indices ``index`` (B,) (an int: one
        generator for all; None: uniform draws)."""
        n = len(z)
        context = self.check_context(context, n)
        index = self.generator_index(n, index)
        if self.share:
            g = self.generator(torch.cat([z, F.one_hot(index, self.k).to(z.dtype)], dim=1), context)
        else:
            g = z.new_empty(n, *self.spec.shape)
            for i, net in enumerate(self.generator):
                rows = (index == i).nonzero().squeeze(1)
                if len(rows):
                    g[rows] = net(z[rows], None if context is None else context[rows])
        return torch.sigmoid(g) if self.spec.levels is not None else g

    def generator_index(self, n: int, index: torch.Tensor | int | None = None) -> torch.Tensor:
        """(n,) 0-based generator indices on the model's device: ``index`` checked, or i ~ U{0..k-1}."""
        if index is None:
            return torch.randint(self.k, (n,), device=self.device)
        index = torch.as_tensor(index, device=self.device).long()
        if index.ndim == 0:
            index = index.expand(n)
        if tuple(index.shape) != (n,) or (len(index) and (index.min() < 0 or index.max() >= self.k)):
            raise ConfigError(f"mad-gan: generator index must be one int or ({n},) ints in 0..{self.k - 1}, "
                              f"got shape {tuple(index.shape)}")
        return index

    def discriminate(self, x_scaled: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """D's k + 1 logits, shape (B, k+1): classes 0..k-1 are the generators, class k is "real"."""
        return self.discriminator(x_scaled, context).reshape(len(x_scaled), self.k + 1)

    # --- the game ---------------------------------------------------------------
    def players(self) -> list[Player]:
        """Discriminator (``d_steps`` updates per step), then all k generators as one player; Adam."""
        return [Player("discriminator", self.discriminator_parameters, steps=self.d_steps),
                Player("generator", self.generator_parameters)]

    def adversarial_forward(self, batch) -> dict:
        """The shared pass: real data on D's scale and fakes of every generator (with gradient) with
        their 0-based generator ``index``; fakes see the real batch's context (repeated for "each")."""
        x, context = unpack_batch(batch)
        n = len(x)
        context = self.check_context(context, n)
        if self.fake_batch == "each":
            index = torch.arange(self.k, device=self.device).repeat_interleave(n)
            fake_context = None if context is None else context.repeat(self.k, 1)
        else:  # every k-th fake from the same generator, from a random start: equal shares up to one
            offset = torch.randint(self.k, (), device=self.device)
            index = (torch.arange(n, device=self.device) + offset) % self.k
            fake_context = context
        fake = self.generate(self.noise(len(index)), fake_context, index)
        return {"real": self.to_d_scale(x), "context": context, "fake": fake, "index": index,
                "fake_context": fake_context}

    def discriminate_fakes(self, shared: dict, detach: bool) -> torch.Tensor:
        """D's logits (k B or B, k+1) for the shared fakes, in batches the size of the real one: with
        ``fake_batch: each`` one call per generator's B fakes.  D's minibatch features (on by default for
        images) sum over the batch they see, so k B fakes at once would differ from B real examples by their
        batch size alone, and D would tell them apart by it (on digits, k = 4: generator loss ~11, FD 494)."""
        fake, context, n = shared["fake"], shared["fake_context"], len(shared["real"])
        if detach:
            fake = fake.detach()
        if len(fake) == n:
            return self.discriminate(fake, context)
        chunks = zip(fake.split(n), context.split(n) if context is not None else [None] * self.k)
        return torch.cat([self.discriminate(f, c) for f, c in chunks])

    def player_loss(self, name: str, batch, shared: dict) -> dict[str, torch.Tensor]:
        """``discriminator``: the (k+1)-way cross-entropy on the real batch and the detached fakes, with
        ``d_real`` = mean D_{k+1}(x), ``d_fake`` = mean D_{k+1}(G_i(z)) and ``generator_accuracy`` (the
        fraction of fakes whose most likely generator class is their own generator; 1/k by chance).  ``generator``:
        -mean log D_{k+1}(G_i(z)) through the shared fakes (D frozen by the adapter), with ``d_fake``."""
        if name == "discriminator":
            real_logits = self.discriminate(shared["real"], shared["context"])
            fake_logits = self.discriminate_fakes(shared, detach=True)
            with torch.no_grad():
                # which generator D names, given that it is a fake (argmax over the k generator classes):
                # 1/k by chance; argmax over all k + 1 classes would read 0 whenever D takes fakes for real
                accuracy = (fake_logits[:, :-1].argmax(1) == shared["index"]).float().mean()
            return {"loss": multiclass_discriminator_loss(real_logits, fake_logits, shared["index"]),
                    "d_real": torch.softmax(real_logits.detach(), 1)[:, -1].mean(),
                    "d_fake": torch.softmax(fake_logits.detach(), 1)[:, -1].mean(),
                    "generator_accuracy": accuracy}
        if name == "generator":
            logits = self.discriminate_fakes(shared, detach=False)
            return {"loss": multiclass_generator_loss(logits),
                    "d_fake": torch.softmax(logits.detach(), 1)[:, -1].mean()}
        raise ConfigError(f"mad-gan: no player named {name!r} (players: discriminator, generator)")

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Figures of the game on a batch, without gradients: ``loss`` is D's (k+1)-way cross-entropy,
        ``g_loss`` the generators' loss, ``d_real`` / ``d_fake`` mean D_{k+1} on real data / fakes,
        ``generator_accuracy`` how often D names the generator of a fake."""
        with torch.no_grad():
            shared = self.adversarial_forward(batch)
            d = self.player_loss("discriminator", batch, shared)
            g = self.player_loss("generator", batch, shared)
        return {"loss": d["loss"], "g_loss": g["loss"], "d_real": d["d_real"], "d_fake": d["d_fake"],
                "generator_accuracy": d["generator_accuracy"]}

    # --- protocol ---------------------------------------------------------------
    def log_prob(self, x, context=None):
        raise DensityError(
            "mad-gan: MAD-GAN is an implicit model (a mixture of k generators) and defines no density, so it has "
            "no log-likelihood; judge it by its samples (`sample`, mode coverage, sample distances)"
        )

    def sample(self, n, context=None, temperature=1.0, index=None):
        """n samples on the data's scale from the uniform mixture: i ~ U{0..k-1}, z ~ N(0, I),
        G_i(temperature * z) (``index``: an int or (n,) ints picks the generators instead)."""
        with torch.no_grad():
            z = self.noise(n, temperature)
            g = self.generate(z, context, self.generator_index(n, index))
        return self.from_d_scale(g)
