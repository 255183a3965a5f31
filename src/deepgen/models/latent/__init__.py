"""Latent-variable models: autoencoders, VAEs."""
