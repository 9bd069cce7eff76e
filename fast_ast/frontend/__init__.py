"""Audio frontend: Kaldi-compatible log-mel filterbanks and training-time augmentation, batched on device."""
