"""Normalizing flows: a base density plus a bijection."""
