"""Sweeps on clusters: what a sweep directory holds (sweep.py) and a local one-node SLURM cluster (local_slurm.sh)."""
