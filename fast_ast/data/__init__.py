"""Corpora: one LightningDataModule per dataset layout. Batches are dicts:
audio [B, S] float waveform at the corpus sample rate, target [B] long (single-label) or [B, C] float
(multi-label), id list[str] of clip ids; data=events adds frame_target [B, C, event_bins].

File-based corpora (esc50, speechcommands, audioset, folder, events) derive from
file_corpus.FileCorpusDataModule: one code path for file checks (validation.py), the bad-file policy,
the decoded-audio cache (audio_cache.py) and cropping (clip_dataset.py)."""
