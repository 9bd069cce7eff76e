"""SLURM's requeue signal in a job of several tasks (multi-node DDP).

SLURM sends SIGUSR1 to every task of a job before its time limit (conf/hydra/launcher/slurm.yaml).
submitit's handler acts on global rank 0 only: it saves the resubmission, runs `scontrol requeue` and
exits. The other ranks keep training until SLURM ends the job; meanwhile their next collective fails
(rank 0 is gone) with an ordinary exception, which would be recorded as the job's outcome (submitit's
result file for that task) although the requeued job is about to continue the run. RequeueSignal notes
the signal so that such an exception ends the task as an interruption (SystemExit) instead.
"""

from __future__ import annotations

import os
import signal


def requeue_signal() -> signal.Signals:
    """The signal submitit requeues on (SUBMITIT_PREEMPT_SIGNAL, as submitit reads it; USR2 without it)."""
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    try:
        return signal.Signals[f"SIG{name}"]
    except KeyError:
        raise ValueError(f"SUBMITIT_PREEMPT_SIGNAL={name}: not a signal name (e.g. USR1)") from None


class RequeueSignal:
    """Wraps the handler already installed for submitit's requeue signal (none outside a submitit job:
    then it installs nothing and `received` stays False)."""

    def __init__(self):
        self.received = False
        self.signum = requeue_signal()
        self.previous = signal.getsignal(self.signum)
        if callable(self.previous):
            signal.signal(self.signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = True
        self.previous(signum, frame)
