"""Vector-quantised VAE (van den Oord, Vinyals & Kavukcuoglu 2017) with a PixelCNN prior over its codes,
both trained by one run in two stages.

Model.  A conv encoder maps an image x to a grid of vectors z_e(x) (D, h, w), h = H / 2^depth; each is
replaced by its nearest of K codebook vectors (:mod:`deepgen.nets.vector_quantizer`),

    k_ij(x) = argmin_k ||z_e(x)_ij - e_k||^2,      z_q(x)_ij = e_{k_ij(x)},

and a conv decoder gives a normalised likelihood p(x | z_q) on the data's scale (discretized logistic
for L > 2 levels, Bernoulli for 2, Gaussian for continuous data).  The codes k (h x w indices) have an
autoregressive prior, a PixelCNN over the code grid in raster order with a categorical over K codes
per position,

    log p_prior(k) = sum_{ij} log p(k_ij | k_{<ij}),
    p(k_ij = k | k_{<ij}) = (1 - eps) softmax(f(k_{<ij}))_k + eps / K      (eps = ``prior_floor``, default 0),

whose input is the code grid as K one-hot channels (``prior_input="onehot"``: the first, mask-A
convolution is then a learned embedding of every code at every tap) or the indices scaled to [-1, 1]
(``"scaled"``).  The training split gives the prior few code grids (one per image) and it overfits
them quickly, so it is regularised: dropout inside its blocks and, while it trains, each input code blanked
(all-zero one-hot) with probability ``prior_code_dropout`` (the targets are never blanked).

Stage 1 (the first ``vq_steps`` training steps): the VQ-VAE, with the straight-through estimator
(the decoder sees z_e + sg(z_q - z_e)) and

    loss_1 = -log p(x | z_q) + beta ||z_e - sg(z_q)||^2  [+ ||sg(z_e) - z_q||^2 without EMA]

(beta = ``commitment``); with ``ema`` the codebook follows exponential moving averages of its assigned
encoder outputs, and with ``restarts`` a code unused for ``restart_after`` steps is re-initialised to a
random encoder output of the current batch.  Stage 2 (every later step): the prior alone on the frozen
codes, loss_2 = -log p_prior(k(x)); encoder, codebook and decoder get no gradient and no EMA or restart
update, so their weights stay bit-identical.  A persistent buffer ``train_steps`` counts training calls
of :meth:`loss` (saved with the weights, so a resumed run continues in the right stage).

Density.  The posterior q(k | x) is the point mass on k(x): its entropy is 0 and
KL(q || p_prior) = -log p_prior(k(x)), so the ELBO is

    log p(x) >= log p(x | z_q(x)) + log p_prior(k(x))          (``log_prob``, nats; a bound)

(deterministic: the same value every call).  On discrete data both terms are log-probabilities, <= 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from deepgen.data.spec import DataSpec
from deepgen.distributions import make_output, resolve_output
from deepgen.errors import ConfigError
from deepgen.models.base import unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.nets.conv import context_channels, downsampled_size
from deepgen.nets.pixelcnn import PixelCNNNet
from deepgen.nets.resnet import ResidualBlock
from deepgen.nets.vector_quantizer import VectorQuantizer, code_counts, perplexity

PRIOR_INPUTS = ("onehot", "scaled")
DECODERS = ("bernoulli", "categorical", "logistic", "logistic-mixture", "gaussian")
_DIAG_BATCH = 512  # examples per batch in diagnostics


class _GridEncoder(nn.Module):
    """(B, C, H, W) [+ context channels] -> (B, D, H / 2^depth, W / 2^depth): conv3x3, ``depth`` stride-2
    conv4x4 (halving the resolution, doubling the channels up to ``channels``), ``blocks`` residual blocks,
    relu, conv1x1 to D."""

    def __init__(self, in_channels, code_dim, channels, depth, blocks, context_features):
        super().__init__()
        ch = [max(1, channels // 2 ** (depth - i)) for i in range(depth + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels + context_features, ch[0], 3, padding=1)]
        for i in range(depth):
            layers += [nn.ReLU(), nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1)]
        layers += [ResidualBlock(ch[-1]) for _ in range(blocks)]
        layers += [nn.ReLU(), nn.Conv2d(ch[-1], code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x, context=None):
        return self.net(context_channels(x, context))


class _GridDecoder(nn.Module):
    """(B, D, h, w) [+ context channels] -> (B, out, h 2^depth, w 2^depth): the mirror of the encoder."""

    def __init__(self, code_dim, out_channels, channels, depth, blocks, context_features):
        super().__init__()
        ch = [max(1, channels // 2**i) for i in range(depth + 1)]
        layers: list[nn.Module] = [nn.Conv2d(code_dim + context_features, ch[0], 3, padding=1)]
        layers += [ResidualBlock(ch[0]) for _ in range(blocks)]
        for i in range(depth):
            layers += [nn.ReLU(), nn.ConvTranspose2d(ch[i], ch[i + 1], 4, stride=2, padding=1)]
        layers += [nn.ReLU(), nn.Conv2d(ch[-1], out_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z, context=None):
        return self.net(context_channels(z, context))


class VQVAE(LatentModel):
    """VQ-VAE (conv encoder -> nearest of K codes on an h x w grid -> conv decoder) and a PixelCNN prior
    over the code grid, trained one after the other by the same run (``vq_steps`` steps, then the prior)."""

    name = "vqvae"
    density = "bound"
    capabilities = frozenset({"log_prob", "encode", "diagnostics", "conditional"})
    description = ("VQ-VAE: nearest-code quantised conv autoencoder (EMA codebook, dead-code restarts) + "
                   "PixelCNN prior over the code grid, trained in two stages by one run (bound, images)")
    data_shapes = frozenset({"image"})
    # digits: 2x2 grid of 64 codes, vq_steps 2500 + 500 prior steps (the prior overfits after a few hundred);
    # a constant lr keeps the prior's stage from starting at a decayed cosine rate
    train_defaults = {"steps": 3000, "lr": 2e-3, "lr_schedule": "constant"}

    param_constraints = {"codes": ">= 2", "code_dim": ">= 1", "channels": ">= 1", "depth": ">= 0",
                         "blocks": ">= 0", "commitment": ">= 0", "ema": (True, False), "decay": "in [0, 1)",
                         "restarts": (True, False), "restart_after": ">= 1", "vq_steps": ">= 0",
                         "prior_channels": ">= 2", "prior_blocks": ">= 0", "prior_kernel": ">= 1",
                         "prior_dropout": "in [0, 1)", "prior_input": PRIOR_INPUTS,
                         "prior_code_dropout": "in [0, 1)", "prior_floor": "in [0, 1)", "decoder": ("auto",) + DECODERS,
                         "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, codes: int = 64, code_dim: int = 8, channels: int = 32, depth: int = 2,
                 blocks: int = 1, commitment: float = 0.25, ema: bool = True, decay: float = 0.99,
                 restarts: bool = True, restart_after: int = 20, vq_steps: int = 2500, prior_channels: int = 32,
                 prior_blocks: int = 1, prior_kernel: int = 3, prior_dropout: float = 0.5,
                 prior_input: str = "onehot", prior_code_dropout: float = 0.3, prior_floor: float = 0.0,
                 decoder: str = "auto", context_features: int = 0, standardize: bool = True):
        """Build a VQ-VAE with a PixelCNN prior for image data ``spec`` (C, H, W).

        Args:
            codes: K, the number of codebook vectors (the prior is a categorical over K per position).
            code_dim: D, the size of each code vector.
            channels: channels of the conv encoder/decoder at the code resolution (halved at each finer one).
            depth: stride-2 stages of the encoder: the code grid is (H / 2^depth) x (W / 2^depth).
            blocks: residual blocks of the encoder and of the decoder at the code resolution.
            commitment: beta, the weight of the commitment term ||z_e - sg(z_q)||^2.
            ema: update the codebook by exponential moving averages (else by the codebook loss term).
            decay: the EMA decay g of the codebook counts and sums.
            restarts: re-initialise a code unused for restart_after steps to a random recent encoder output.
            restart_after: training steps a code may go unused before it is restarted (with restarts).
            vq_steps: training steps of stage 1 (the VQ-VAE); every later step trains only the prior.
            prior_channels: feature maps of the PixelCNN prior over the code grid.
            prior_blocks: residual blocks of the PixelCNN prior.
            prior_kernel: odd size of the prior's first (mask A) convolution.
            prior_dropout: dropout rate inside the prior's residual blocks.
            prior_input: how the prior reads the codes: "onehot" (K channels; a learned embedding per tap) or
                "scaled" (one channel, the index scaled to [-1, 1]).
            prior_code_dropout: while the prior trains, each input code is blanked (its one-hot set to 0, or
                its scaled value to 0) with this probability; targets are untouched (a regulariser).
            prior_floor: eps, the weight of a uniform component in every conditional of the prior,
                p(k_ij | k_<ij) = (1 - eps) softmax(logits)_k + eps / K (caps the nats of any code at log(K / eps)).
            decoder: likelihood p(x | z_q): "auto" (bernoulli, logistic or gaussian by the data) or one listed.
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional);
                it enters the encoder and decoder as constant channels and the prior as learned biases.
            standardize: continuous data: model (x - mean) / std per channel, Jacobian counted.
        """
        super().__init__(spec, codes=codes, code_dim=code_dim, channels=channels, depth=depth, blocks=blocks,
                         commitment=commitment, ema=ema, decay=decay, restarts=restarts,
                         restart_after=restart_after, vq_steps=vq_steps, prior_channels=prior_channels,
                         prior_blocks=prior_blocks, prior_kernel=prior_kernel, prior_dropout=prior_dropout,
                         prior_input=prior_input, prior_code_dropout=prior_code_dropout, prior_floor=prior_floor,
                         decoder=decoder, context_features=context_features, standardize=standardize)
        if not spec.is_image:
            raise ConfigError(f"vqvae expects images (C, H, W); data '{spec.name}' has shape {tuple(spec.shape)} "
                              "(it quantises a grid of conv features; for vectors use vae)")
        if prior_kernel % 2 == 0:
            raise ConfigError(f"vqvae: prior_kernel must be odd (a centred masked convolution), got {prior_kernel}")
        self.grid = downsampled_size(spec.shape, depth, "vqvae")
        self.codes, self.code_dim = codes, code_dim
        self.commitment, self.vq_steps = float(commitment), int(vq_steps)
        self.latent = code_dim * self.grid[0] * self.grid[1]
        self.decoder_kind = resolve_output(decoder, spec, allowed=DECODERS, field="decoder")
        self.likelihood = make_output(self.decoder_kind, spec)
        p = self.likelihood.params_per_dim
        c = spec.shape[0]
        self.encoder = _GridEncoder(c, code_dim, channels, depth, blocks, context_features)
        self.decoder = _GridDecoder(code_dim, c * p, channels, depth, blocks, context_features)
        self.quantizer = VectorQuantizer(codes, code_dim, ema=ema, decay=decay,
                                         restart_after=restart_after if restarts else 0)
        self.prior_input, self.prior_code_dropout = prior_input, float(prior_code_dropout)
        self.prior_floor = float(prior_floor)
        self.prior = PixelCNNNet(1, codes, prior_channels, prior_blocks, prior_kernel, 3, prior_dropout,
                                 context_features, in_channels=codes if prior_input == "onehot" else 1)
        # training calls of loss() so far: decides the stage; saved with the weights (resume continues)
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))

    # --- networks -----------------------------------------------------------------
    def _encoder_input(self, x):
        # levels scaled to [-1, 1]; continuous data standardised.  The likelihood scores the raw data.
        if self.spec.levels is not None:
            return 2 * x / (self.spec.levels - 1) - 1
        return self.to_model_space(x)

    def encode_grid(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder output z_e(x): (B, D, h, w), before quantisation."""
        return self.encoder(self._encoder_input(x), self.check_context(context, len(x)))

    def code_indices(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """k(x): the nearest-code index at every grid position, (B, h, w) long."""
        return self.quantizer.quantize(self.encode_grid(x, context))[0]

    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The point code of x: z_e(x) flattened, (B, D h w) (``decode`` quantises it)."""
        return self.encode_grid(x, context).flatten(1)

    def decoder_params(self, z_q: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's parameters given the code grid z_q (B, D, h, w): (B, *data shape, P)."""
        p = self.likelihood.params_per_dim
        c, h, w = self.spec.shape
        return self.decoder(z_q, context).reshape(len(z_q), p, c, h, w).movedim(1, -1)

    def log_likelihood(self, x, z_q, context=None) -> torch.Tensor:
        """log p(x | z_q) per example (nats, data units), summed over every data dimension."""
        lp = self.likelihood.log_prob(self.to_model_space(x), self.decoder_params(z_q, context))
        return lp.reshape(len(x), -1).sum(-1) + self.preprocess_log_det()

    def _prior_input(self, idx: torch.Tensor) -> torch.Tensor:
        """Code indices (B, h, w) as the prior's input image: K one-hot channels (B, K, h, w), or the
        indices scaled to [-1, 1] as one channel (B, 1, h, w)."""
        dtype = self.quantizer.codebook.dtype
        if self.prior_input == "onehot":
            inp = F.one_hot(idx, self.codes).to(dtype).movedim(-1, 1)
        else:
            inp = (2 * idx.to(dtype) / (self.codes - 1) - 1).unsqueeze(1)
        if self.training and self.prior_code_dropout > 0:
            keep = torch.rand(idx.shape, device=idx.device) >= self.prior_code_dropout
            inp = inp * keep.unsqueeze(1).to(dtype)
        return inp

    def prior_logits(self, idx: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(k_ij | k_{<ij}) for every position: (B, K, h, w)."""
        return self.prior(self._prior_input(idx), context)[:, 0]

    def prior_log_probs(self, idx: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """log p(k_ij = k | k_{<ij}) for every code k and position: (B, K, h, w), each (B, :, i, j) normalised;
        with ``prior_floor`` eps the mixture (1 - eps) softmax(logits) + eps / K."""
        logp = F.log_softmax(self.prior_logits(idx, context), 1)
        if self.prior_floor > 0:
            eps = self.prior_floor
            logp = torch.logaddexp(logp + math.log1p(-eps), torch.full_like(logp, math.log(eps / self.codes)))
        return logp

    def prior_log_prob(self, idx: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """log p_prior(k) per example (nats): sum over the grid of log p(k_ij | k_{<ij})."""
        return self.prior_log_probs(idx, context).gather(1, idx.unsqueeze(1)).flatten(1).sum(1)

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """Quantise z (B, D h w) or (B, D, h, w) to its nearest codes, then a draw from p(x | z_q) (or its
        mean with ``mean=True``) on the data's scale."""
        context = self.check_context(context, len(z))
        grid = z.reshape(len(z), self.code_dim, *self.grid)
        _, z_q = self.quantizer.quantize(grid)
        return self._decode_quantized(z_q, context, mean)

    def _decode_quantized(self, z_q, context, mean, temperature=1.0):
        params = self.decoder_params(z_q, context)
        out = self.likelihood.mean(params) if mean else self.likelihood.sample(params, temperature)
        return self.from_model_space(out)

    # --- objectives -------------------------------------------------------------------
    @property
    def stage(self) -> int:
        """1 while the VQ-VAE trains (train_steps < vq_steps), 2 once only the prior trains."""
        return 1 if int(self.train_steps) < self.vq_steps else 2

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """Stage 1: -log p(x | z_q) + beta commitment (+ codebook term without EMA), then the EMA and
        restart updates; stage 2: -log p_prior(k(x)) on the frozen codes.  Terms (per example): rec
        (log p(x | z_q), nats), commitment, prior_nll (nats) and the stage (1 or 2)."""
        x, context = unpack_batch(batch)
        context = self.check_context(context, len(x))
        stage = self.stage
        if self.training:
            self.train_steps += 1
        if stage == 1:
            z_e = self.encode_grid(x, context)
            q = self.quantizer(z_e)
            rec = self.log_likelihood(x, q["z_st"], context)
            loss = (-rec + self.commitment * q["commitment"] + q["codebook_loss"]).mean()
            idx = q["indices"]
            if self.training:
                with torch.no_grad():
                    flat = self.quantizer.flatten(z_e.detach())
                    self.quantizer.ema_update(flat, idx)
                    self.quantizer.record_usage(idx)
                    self.quantizer.restart_dead(flat)
            with torch.no_grad():
                prior_nll = -self.prior_log_prob(idx, context)
        else:
            with torch.no_grad():  # frozen: nothing of stage 1 gets a gradient or an update
                z_e = self.encode_grid(x, context)
                q = self.quantizer(z_e)
                idx = q["indices"]
                rec = self.log_likelihood(x, q["z_q"], context)
            prior_nll = -self.prior_log_prob(idx, context)
            loss = prior_nll.mean()
        return {"loss": loss, "rec": rec.mean().detach(), "commitment": q["commitment"].mean().detach(),
                "prior_nll": prior_nll.mean().detach(), "stage": torch.tensor(float(stage), device=x.device)}

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The bound log p(x | z_q(x)) + log p_prior(k(x)) per example (nats; see the module docstring)."""
        context = self.check_context(context, len(x))
        idx, z_q = self.quantizer.quantize(self.encode_grid(x, context))
        return self.log_likelihood(x, z_q, context) + self.prior_log_prob(idx, context)

    # --- generation ---------------------------------------------------------------------
    @torch.no_grad()
    def sample_codes(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Code grids k ~ p_prior (B, h, w), position by position in raster order (one prior pass each);
        log-probabilities are divided by ``temperature`` (0: the most probable code)."""
        context = self.check_context(context, n)
        h, w = self.grid
        idx = torch.zeros(n, h, w, dtype=torch.long, device=self.quantizer.codebook.device)
        for i in range(h):
            for j in range(w):
                logp = self.prior_log_probs(idx, context)[:, :, i, j]
                if temperature == 0:
                    idx[:, i, j] = logp.argmax(1)
                else:
                    idx[:, i, j] = torch.multinomial(torch.softmax(logp / temperature, 1), 1).squeeze(1)
        return idx

    @torch.no_grad()
    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0,
               mean: bool = False) -> torch.Tensor:
        """Codes k ~ p_prior (at ``temperature``), then x ~ p(x | e_k) (same temperature; or E[x | e_k]
        with ``mean=True``), on the data's scale."""
        context = self.check_context(context, n)
        idx = self.sample_codes(n, context, temperature)
        return self._decode_quantized(self.quantizer.lookup(idx), context, mean, temperature)

    # --- diagnostics ----------------------------------------------------------------------
    @torch.no_grad()
    def diagnostics(self, x: torch.Tensor, context: torch.Tensor | None = None,
                    batch_size: int = _DIAG_BATCH) -> dict[str, float]:
        """Figures over the whole split ``x`` (in eval mode, no gradient):

        codebook_perplexity   exp(entropy of the code usage over every grid position of the split)
        dead_code_fraction    fraction of the K codes used at no position of the split
        prior_bits_per_code   -log2 p_prior(k(x)) per grid position
        reconstruction_nats   -log p(x | z_q(x)) per example
        """
        was_training = self.training
        self.eval()
        try:
            counts = torch.zeros(self.codes, dtype=torch.float64)
            rec_sum, prior_sum = 0.0, 0.0
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size].to(self.device)
                cb = None if context is None else context[start:start + batch_size]
                cb = self.check_context(cb, len(xb))
                idx, z_q = self.quantizer.quantize(self.encode_grid(xb, cb))
                counts += code_counts(idx, self.codes).cpu()
                rec_sum += float(self.log_likelihood(xb, z_q, cb).double().sum())
                prior_sum += float(self.prior_log_prob(idx, cb).double().sum())
        finally:
            self.train(was_training)
        n = max(len(x), 1)
        positions = n * self.grid[0] * self.grid[1]
        return {"codebook_perplexity": perplexity(counts),
                "dead_code_fraction": float((counts == 0).double().mean()),
                "prior_bits_per_code": -prior_sum / positions / math.log(2),
                "reconstruction_nats": -rec_sum / n}
