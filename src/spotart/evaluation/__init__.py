"""Evaluation of the learned features: linear probes, fine-tuning, kNN, baselines, the CPU-scale reproduction."""
