"""Backbones: modules mapping normalised log-mel features [batch, frames, mel_bins] to logits."""
