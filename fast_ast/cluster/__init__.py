"""Sweeps on clusters: what a sweep directory holds (sweep.py), SLURM's requeue signal in multi-task jobs
(requeue.py) and a local SLURM cluster of namespaced nodes (local_slurm.sh, `make slurm-up NODES=2`)."""
