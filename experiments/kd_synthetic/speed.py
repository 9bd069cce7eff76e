"""Eval throughput of the study's teacher and student (waveform -> logits), measured in alternating rounds.

    python experiments/kd_synthetic/speed.py TEACHER.ckpt STUDENT.ckpt --r 0 16 --batch 8 --repeats 20

Both checkpoints are rebuilt with load_classifier; the student runs at each Token Merging r (ToMe only
changes the forward pass). fast_ast.measure.timing alternates the contenders round by round after warm-up,
so load from other processes hits them alike; the speed-ups are medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from fast_ast.device import device_description
from fast_ast.measure.timing import alternating_times, median_ratio
from fast_ast.modules.checkpoint import load_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("teacher")
    parser.add_argument("student")
    parser.add_argument("--r", type=int, nargs="+", default=[0, 16])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    torch.manual_seed(0)
    models = {"teacher": load_classifier(args.teacher)}
    models.update({f"student r={r}": load_classifier(args.student, tome={"r": r}) for r in args.r})
    audio = torch.randn(args.batch, models["teacher"].hparams.clip_samples) * 0.1
    with torch.inference_mode():
        times = alternating_times({name: (lambda m=model: m(audio)) for name, model in models.items()}, "cpu", 2, args.repeats)
    print(f"device: {device_description('cpu')}, batch {args.batch}, {args.repeats} alternating rounds")
    print("| model | clips/s (median) | speed-up vs teacher | speed-up vs student r=0 |")
    print("|---|---|---|---|")
    reference = f"student r={args.r[0]}"
    for name, seconds in times.items():
        clips = args.batch / statistics.median(seconds)
        vs_teacher = median_ratio(times["teacher"], seconds)
        vs_student = "—" if name == "teacher" else f"{median_ratio(times[reference], seconds):.2f}x"
        print(f"| {name} | {clips:.1f} | {vs_teacher:.2f}x | {vs_student} |")


if __name__ == "__main__":
    main()
