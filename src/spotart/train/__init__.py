"""The two training stages: ``stage1`` (autoencoder) and ``stage2`` (spot the artifacts)."""
