"""Adversarial (implicit) models: GANs."""
