"""The built-in model names and where each model lives: a plain table, importable without torch.

The CLI checks a ``--model`` name against it before it imports anything heavy (an unknown name is
reported in well under a second); :mod:`deepgen.models.registry` imports a model's module from it
on first use.
"""

from __future__ import annotations

# name -> "module:Class"; one model per file, one subpackage per family.
BUILTIN_MODELS: dict[str, str] = {
    "realnvp": "deepgen.models.flows.realnvp:RealNVP",
    "nice": "deepgen.models.flows.nice:NICE",
    "maf": "deepgen.models.flows.maf:MAF",
    "iaf": "deepgen.models.flows.iaf:IAF",
    "nsf": "deepgen.models.flows.nsf:NSF",
    "glow": "deepgen.models.flows.glow:Glow",
    "planar": "deepgen.models.flows.planar:Planar",
    "radial": "deepgen.models.flows.radial:Radial",
    "ffjord": "deepgen.models.flows.ffjord:FFJORD",
    "made": "deepgen.models.autoregressive.made:MADE",
    "fvsbn": "deepgen.models.autoregressive.fvsbn:FVSBN",
    "nade": "deepgen.models.autoregressive.nade:NADE",
    "pixelcnn": "deepgen.models.autoregressive.pixelcnn:PixelCNN",
    "gated-pixelcnn": "deepgen.models.autoregressive.gated_pixelcnn:GatedPixelCNN",
    "pixelrnn": "deepgen.models.autoregressive.pixelrnn:PixelRNN",
    "vae": "deepgen.models.latent.vae:VAE",
    "ae": "deepgen.models.latent.ae:Autoencoder",
    "dae": "deepgen.models.latent.dae:DenoisingAutoencoder",
    "vqvae": "deepgen.models.latent.vqvae:VQVAE",
    "draw": "deepgen.models.latent.draw:DRAW",
    "pixelvae": "deepgen.models.latent.pixelvae:PixelVAE",
    "gan": "deepgen.models.adversarial.gan:GAN",
    "wgan": "deepgen.models.adversarial.wgan:WGAN",
    "wgan-gp": "deepgen.models.adversarial.wgan_gp:WGANGP",
    "mad-gan": "deepgen.models.adversarial.mad_gan:MADGAN",
    "infogan": "deepgen.models.adversarial.infogan:InfoGAN",
    "bigan": "deepgen.models.adversarial.bigan:BiGAN",
    "aae": "deepgen.models.adversarial.aae:AAE",
    "vae-gan": "deepgen.models.adversarial.vae_gan:VAEGAN",
    "pix2pix": "deepgen.models.translation.pix2pix:Pix2Pix",
    "cyclegan": "deepgen.models.translation.cyclegan:CycleGAN",
    "mixture-align": "deepgen.models.translation.mixture_align:MixtureAlign",
    "puppet": "deepgen.models.translation.puppet:PuppetGAN",
}
