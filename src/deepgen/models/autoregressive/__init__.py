"""Autoregressive models: exact likelihoods from the chain rule."""
