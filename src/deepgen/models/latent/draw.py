"""DRAW: a recurrent variational autoencoder that paints its image in T steps (Gregor et al. 2015).

Generation.  A decoder LSTM receives one latent z_t ~ N(0, I) per step and adds what it
writes to a canvas; the image is drawn from a normalised likelihood whose parameters are the
final canvas:

    h_dec_t = LSTM_dec(h_dec_{t-1}, [z_t, y])          t = 1..T   (y: the context, if any)
    c_t     = c_{t-1} + write(h_dec_t)                 c_0 a learned bias image
    x ~ p(x | c_T)                                     (bernoulli for 2 levels, discretized logistic
                                                        over L > 2 levels, gaussian for continuous data;
                                                        the canvas has C * P channels: P parameters
                                                        per pixel, see deepgen.distributions.outputs)

Inference.  An encoder LSTM reads the image and the error image of the current canvas

    x^_t    = x - loc(c_{t-1})                         (on the encoder's scale: levels / (L - 1); loc: the
                                                        likelihood's location, e.g. sigmoid(c) for bernoulli)
    r_t     = read(x, x^_t, h_dec_{t-1})
    h_enc_t = LSTM_enc(h_enc_{t-1}, [r_t, h_dec_{t-1}, y])
    q(z_t | h_enc_t) = N(mu(h_enc_t), diag sigma(h_enc_t)^2)

and z_t = mu_t + sigma_t eps_t drives the decoder step above.  With ``attention`` the reads and
writes are N x N Gaussian-filterbank glimpses (:mod:`deepgen.nets.draw_attention`,
N = ``read_size`` / ``write_size``; the grid parameters come from h_dec_{t-1} for reads and h_dec_t
for writes); without it, read is [x, x^] whole and write a linear map of h_dec_t to the whole canvas.

Bounds (nats per example, normalised on the data's scale):

    ELBO(x)   = log p(x | c_T) - sum_t KL(q(z_t | h_enc_t) || N(0, I))           (one draw of z_1..z_T)
    IWAE_k(x) = log (1/k) sum_i exp(log p(x | c_T^i) + sum_t [log N(z_t^i; 0, I) - log q(z_t^i | h_enc_t^i)])

with k independent sequences z^i_1..z^i_T.  ``loss`` is -ELBO, ``log_prob`` IWAE_k (>= ELBO in
expectation, -> log p(x) as k grows).  The point code of x (``encode``) is the concatenation of
the posterior means mu_1..mu_T of a run that feeds the means themselves to the decoder;
``decode`` replays the decoder on such a code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepgen.data.spec import DataSpec
from deepgen.distributions import gaussian_kl, gaussian_log_prob, make_output, resolve_output, standard_normal_log_prob
from deepgen.errors import ConfigError
from deepgen.models.base import unpack_batch
from deepgen.models.latent.base import LatentModel
from deepgen.nets.draw_attention import GaussianAttention

DECODERS = ("bernoulli", "categorical", "logistic", "gaussian")
# Rows (examples x importance samples) run through the recurrence at once in log_prob.
_IW_ROWS = 1 << 13


class DRAW(LatentModel):
    """DRAW with LSTM encoder/decoder, Gaussian-filterbank attention and a normalised likelihood.

    The code of ``encode`` / ``decode`` is the T per-step latents concatenated: ``self.latent`` =
    glimpses * latent.  ``canvases(n)`` returns E[x | c_t] after every step t of generation.
    """

    name = "draw"
    density = "bound"
    data_shapes = frozenset({"image"})
    capabilities = frozenset({"log_prob", "elbo", "importance_weighted", "encode", "canvas", "conditional"})
    description = "DRAW: recurrent VAE painting a canvas in T attention steps; importance-weighted log p(x)"
    # digits, 3000 steps (test nats): whole-image read/write (attention false), hidden 64: ELBO 84.8,
    # IWAE_50 81.6; hidden 128: ELBO 87.9 (overfits: train ELBO 70); attention 3x3 read / 4x4 write,
    # hidden 128: ELBO 87.1 (underfits: an 8 x 8 image is too small for glimpses to pay)
    train_defaults = {"steps": 3000, "lr": 3e-3}

    param_constraints = {"glimpses": ">= 1", "hidden": ">= 1", "latent": ">= 1", "attention": (True, False),
                         "read_size": ">= 1", "write_size": ">= 1", "decoder": ("auto",) + DECODERS,
                         "iw_samples": ">= 1", "context_features": ">= 0"}

    def __init__(self, spec: DataSpec, glimpses: int = 8, hidden: int = 64, latent: int = 8,
                 attention: bool = False, read_size: int = 3, write_size: int = 4, decoder: str = "auto",
                 iw_samples: int = 50, context_features: int = 0, standardize: bool = True):
        """Build DRAW for images ``spec``.

        Args:
            glimpses: T, the number of read/write steps (one latent z_t per step).
            hidden: units of the encoder LSTM and of the decoder LSTM.
            latent: dimension of each step's latent z_t ~ N(0, I) (the code has glimpses * latent).
            attention: True: N x N Gaussian-filterbank read/write glimpses (the paper's, for larger images);
                False: read and write the whole image (better on 8 x 8 digits).
            read_size: N of the read glimpse (attention only).
            write_size: N of the write patch (attention only).
            decoder: likelihood p(x | c_T): "auto", "bernoulli", "categorical", "logistic" or "gaussian".
            iw_samples: importance samples k of log_prob's IWAE bound (and of scores).
            context_features: size of the context vector of a conditional model p(x | c) (0: unconditional).
            standardize: continuous data: model (x - mean) / std per channel, Jacobian counted.
        """
        super().__init__(spec, glimpses=glimpses, hidden=hidden, latent=latent, attention=attention,
                         read_size=read_size, write_size=write_size, decoder=decoder, iw_samples=iw_samples,
                         context_features=context_features, standardize=standardize)
        if not spec.is_image:
            raise ConfigError(f"draw needs images (C, H, W); data '{spec.name}' has shape {tuple(spec.shape)} "
                              f"(vectors: use vae)")
        self.decoder_kind = resolve_output(decoder, spec, allowed=DECODERS, field="decoder")
        self.likelihood = make_output(self.decoder_kind, spec)
        c, h, w = spec.shape
        p = self.likelihood.params_per_dim
        self.glimpses, self.hidden, self.step_latent = glimpses, hidden, latent
        self.latent = glimpses * latent
        self.attention = bool(attention)
        self.iw_samples = iw_samples
        self.canvas_channels = c * p
        if self.attention:
            self.read_att = GaussianAttention(hidden, read_size, h, w)
            self.write_att = GaussianAttention(hidden, write_size, h, w)
            read_features = 2 * c * read_size * read_size
            self.write_net = nn.Linear(hidden, c * p * write_size * write_size)
            self.write_shape = (c * p, write_size, write_size)
        else:
            read_features = 2 * c * h * w
            self.write_net = nn.Linear(hidden, c * p * h * w)
            self.write_shape = (c * p, h, w)
        self.encoder = nn.LSTMCell(read_features + hidden + context_features, hidden)
        self.decoder = nn.LSTMCell(latent + context_features, hidden)
        self.posterior_net = nn.Linear(hidden, 2 * latent)
        self.canvas0 = nn.Parameter(torch.zeros(c * p, h, w))

    # --- pieces -----------------------------------------------------------------------
    def _encoder_input(self, x):
        """x on the encoder's scale: discrete levels / (L - 1) in [0, 1]; continuous data standardised."""
        return x / (self.spec.levels - 1) if self.spec.levels is not None else self.to_model_space(x)

    def output_params(self, canvas: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameters from a canvas (B, C * P, H, W): shape (B, C, H, W, P)."""
        c, h, w = self.spec.shape
        return canvas.reshape(len(canvas), -1, c, h, w).movedim(1, -1)

    def _canvas_location(self, canvas):
        """loc(c): where p(x | c) sits, on the encoder's scale, cheaply (it is computed every step):
        sigmoid(l) (bernoulli), the logistic's mu clamped to [0, L - 1] (logistic), the mean
        (categorical, gaussian); divided by L - 1 for discrete data."""
        params = self.output_params(canvas)
        if self.decoder_kind == "logistic":
            return ((1 + params[..., 0]) / 2).clamp(0, 1)  # mu / (L - 1), mu = (L - 1) / 2 (1 + p0)
        mean = self.likelihood.mean(params)
        return mean / (self.spec.levels - 1) if self.spec.levels is not None else mean

    def _write(self, h_dec):
        w = self.write_net(h_dec).reshape(len(h_dec), *self.write_shape)
        return self.write_att.write(h_dec, w) if self.attention else w

    def _read(self, x_in, x_err, h_dec):
        if self.attention:
            return self.read_att.read(h_dec, x_in, x_err)
        return torch.cat([x_in.flatten(1), x_err.flatten(1)], 1)

    def _zeros(self, n):
        return self.canvas0.new_zeros(n, self.hidden)

    @staticmethod
    def _cat(*parts):
        return torch.cat([p for p in parts if p is not None], 1)

    def _infer(self, x: torch.Tensor, context: torch.Tensor | None, sample: bool = True):
        """Run encoder and decoder over x (B, *shape): (c_T, [(mu_t, log sigma_t, z_t)] for t = 1..T).
        ``sample``: z_t = mu_t + sigma_t eps_t (reparameterised); False: z_t = mu_t."""
        n = len(x)
        x_in = self._encoder_input(x)
        h_enc, s_enc, h_dec, s_dec = self._zeros(n), self._zeros(n), self._zeros(n), self._zeros(n)
        canvas = self.canvas0.expand(n, *self.canvas0.shape)
        steps = []
        for _ in range(self.glimpses):
            r = self._read(x_in, x_in - self._canvas_location(canvas), h_dec)
            h_enc, s_enc = self.encoder(self._cat(r, h_dec, context), (h_enc, s_enc))
            mu, log_std = self.posterior_net(h_enc).chunk(2, -1)
            z = mu + torch.exp(log_std) * torch.randn_like(mu) if sample else mu
            h_dec, s_dec = self.decoder(self._cat(z, context), (h_dec, s_dec))
            canvas = canvas + self._write(h_dec)
            steps.append((mu, log_std, z))
        return canvas, steps

    def _generate(self, z: torch.Tensor, context: torch.Tensor | None, every_step: bool = False):
        """Decoder only, from latents z (T, n, latent): the final canvas, or every c_t (T, n, C*P, H, W)."""
        n = z.shape[1]
        h_dec, s_dec = self._zeros(n), self._zeros(n)
        canvas = self.canvas0.expand(n, *self.canvas0.shape)
        canvases = []
        for t in range(self.glimpses):
            h_dec, s_dec = self.decoder(self._cat(z[t], context), (h_dec, s_dec))
            canvas = canvas + self._write(h_dec)
            canvases.append(canvas)
        return torch.stack(canvases) if every_step else canvas

    def log_likelihood(self, x: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        """log p(x | c_T) per example (nats, data units), summed over every pixel and channel.

        On continuous data the canvas parameterises y = (x - m) / s: log p(x | c) = log p(y | c) - sum_d log s_d."""
        lp = self.likelihood.log_prob(self.to_model_space(x), self.output_params(canvas))
        return lp.reshape(len(x), -1).sum(-1) + self.preprocess_log_det()

    def _draw(self, canvas, mean):
        params = self.output_params(canvas)
        return self.from_model_space(self.likelihood.mean(params) if mean else self.likelihood.sample(params))

    # --- codes ------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The point code of x: the posterior means mu_1..mu_T of a run fed with the means, concatenated:
        (B, glimpses * latent)."""
        context = self.check_context(context, len(x))
        _, steps = self._infer(x, context, sample=False)
        return torch.cat([mu for mu, _, _ in steps], 1)

    def decode(self, z: torch.Tensor, context: torch.Tensor | None = None, mean: bool = False) -> torch.Tensor:
        """Replay the decoder with the code z (B, glimpses * latent): a draw from p(x | c_T), or E[x | c_T]."""
        if z.ndim != 2 or z.shape[1] != self.latent:
            raise ConfigError(f"draw decode takes codes of shape (B, {self.latent}) (glimpses * latent), "
                              f"got {tuple(z.shape)}")
        context = self.check_context(context, len(z))
        zs = z.reshape(len(z), self.glimpses, self.step_latent).transpose(0, 1)
        return self._draw(self._generate(zs, context), mean)

    # --- objectives ---------------------------------------------------------------------
    def _elbo_terms(self, x, context=None):
        context = self.check_context(context, len(x))
        canvas, steps = self._infer(x, context)
        kl = sum(gaussian_kl(mu, log_std) for mu, log_std, _ in steps)
        return self.log_likelihood(x, canvas), kl

    def elbo(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Per-example ELBO (nats): log p(x | c_T) - sum_t KL(q(z_t | h_enc_t) || N(0, I)), one draw."""
        rec, kl = self._elbo_terms(x, context)
        return rec - kl

    def loss(self, batch) -> dict[str, torch.Tensor]:
        """-ELBO averaged over the batch; also reports elbo, rec and kl (nats per example)."""
        x, context = unpack_batch(batch)
        rec, kl = self._elbo_terms(x, context)
        elbo = rec - kl
        return {"loss": -elbo.mean(), "elbo": elbo.mean().detach(), "rec": rec.mean().detach(),
                "kl": kl.mean().detach()}

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None, k: int | None = None) -> torch.Tensor:
        """IWAE_k estimate of log p(x) per example (nats); k defaults to ``iw_samples``.

            log (1/k) sum_i exp(w_i),  w_i = log p(x | c_T^i) + sum_t log N(z_t^i; 0, I) - log q(z_t^i | h_enc_t^i)

        The k sequences are run as one batch of k * B rows (in chunks that bound memory), combined
        with a streaming logsumexp.
        """
        k = self.iw_samples if k is None else int(k)
        if k < 1:
            raise ConfigError(f"draw log_prob needs k >= 1 importance samples, got {k}")
        b = len(x)
        context = self.check_context(context, b)
        chunk = max(1, min(k, _IW_ROWS // max(b, 1)))
        total = None
        for start in range(0, k, chunk):
            kc = min(chunk, k - start)
            xs = x.unsqueeze(0).expand(kc, *x.shape).reshape(kc * b, *x.shape[1:])
            cs = None if context is None else context.unsqueeze(0).expand(kc, *context.shape).reshape(kc * b, -1)
            canvas, steps = self._infer(xs, cs)
            log_w = self.log_likelihood(xs, canvas)
            for mu, log_std, z in steps:
                log_w = log_w + standard_normal_log_prob(z) - gaussian_log_prob(z, mu, log_std)
            lse = torch.logsumexp(log_w.reshape(kc, b), 0)
            total = lse if total is None else torch.logaddexp(total, lse)
        return total - math.log(k)

    # --- generation -----------------------------------------------------------------------
    def _prior_draw(self, n, temperature):
        m = self.canvas0
        return temperature * torch.randn(self.glimpses, n, self.step_latent, device=m.device, dtype=m.dtype)

    def sample(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0,
               mean: bool = False) -> torch.Tensor:
        """z_1..z_T ~ N(0, T^2 I), the decoder paints c_T, then x ~ p(x | c_T) (E[x | c_T] with ``mean``)."""
        context = self.check_context(context, n)
        return self._draw(self._generate(self._prior_draw(n, temperature), context), mean)

    def canvases(self, n: int, context: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """E[x | c_t] on the data's scale after each step t = 1..T of generating n images: (T, n, *shape).
        Under the same seed the last equals ``sample(n, context, temperature, mean=True)``."""
        context = self.check_context(context, n)
        every = self._generate(self._prior_draw(n, temperature), context, every_step=True)
        return self._draw(every.flatten(0, 1), True).reshape(self.glimpses, n, *self.spec.shape)
