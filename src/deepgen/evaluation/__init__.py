"""Evaluation: likelihoods in nats and bits/dim, plots."""
