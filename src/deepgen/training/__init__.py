"""Training through PyTorch Lightning: config, adapters, run directories."""
