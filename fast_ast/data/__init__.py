"""Corpora: one LightningDataModule per dataset layout. Batches are dicts:
audio [B, S] float waveform at the corpus sample rate, target [B] long (single-label) or [B, C] float
(multi-label), id list[str] of clip ids."""
