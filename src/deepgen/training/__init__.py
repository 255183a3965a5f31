"""Training through PyTorch Lightning: config, adapters (likelihood, N-player adversarial), schedule, state."""
