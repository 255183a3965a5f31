"""Workflows: training, scoring, sampling, comparing and reporting runs, composed for the CLI and Python."""
