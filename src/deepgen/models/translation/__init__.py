"""Translators: models that map examples of domain A to domain B (pix2pix on paired data, CycleGAN on
unpaired data); the shared protocol is in :mod:`deepgen.models.translation.translator`."""
