"""`python -m fast_ast.tune_reduction ckpt_path=... budget=0.5 [method=tome|prune|temporal] [cost=flops|time]`

Finds, off the shelf (no training), the per-layer reduction schedule that keeps the most of the
checkpoint's monitored metric (data.monitor: acc, mAP) on the validation split within a cost budget:
greedy search (fast_ast.tome.search) over per-layer levels, scored on features computed once.
The cost is the forward FLOPs (fast_ast.tome.flops) or the measured time of a batch, relative to the
plain model. Writes in the run directory:
    reduction.yaml  the tome.* keys of the schedule found, to pass back (tome.r=[...], or
                    tome.method=prune tome.r=0 tome.keep_rate=[...])
    search.json     the search (trajectory, evaluations, time) and, at the same budget, ToMe's constant
                    and decreasing (inflection -1) schedules: the smallest r within the budget, scored alike
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fast_ast.device import device_description, resolve_device
from fast_ast.measure.timing import alternating_times
from fast_ast.eval import check_compatible
from fast_ast.inference.model import load_for_inference
from fast_ast.modules.metrics import build_metrics, finalize
from fast_ast.resolvers import CONF_DIR, register_resolvers
from fast_ast.tome import METHODS, TokenReduction, plan_reduction
from fast_ast.tome.flops import ast_forward_flops
from fast_ast.tome.search import cheapest_within, greedy_search

log = logging.getLogger(__name__)
register_resolvers()

PLAIN = {"method": "tome", "r": 0, "inflection": 0.0, "keep_rate": 1.0, "freq_patchout": 0, "time_patchout": 0, "trace_source": False}


def level_settings(method: str, levels: list[int], step: float) -> dict:
    """Per-layer levels -> the tome.* keys of that schedule."""
    if method == "prune":
        return {"method": "prune", "r": 0, "keep_rate": [round(1.0 - level * step, 6) for level in levels]}
    return {"method": method, "r": [int(level * step) for level in levels]}


def default_step(method: str, backbone) -> float:
    if method == "prune":
        return 0.1
    if method == "temporal":
        return 1
    return max(1, round(0.02 * backbone.num_patches))


def max_level(method: str, backbone, step: float) -> int:
    if method == "prune":
        return math.ceil(1.0 / step) - 1  # keep rates stay > 0
    if method == "temporal":
        return int((backbone.token_grid[1] // 2) // step)
    return int((backbone.num_patches // 2) // step)


class Scorer:
    """The monitored metric of `backbone` under a reduction plan, on features [B, T, F] computed once."""

    def __init__(self, model, batches: list[tuple[torch.Tensor, torch.Tensor]], metric: str):
        self.model, self.batches, self.metric = model, batches, metric

    @torch.inference_mode()
    def __call__(self, plan: TokenReduction | None) -> float:
        metrics = build_metrics(self.model.num_classes, self.model.multilabel).to(self.batches[0][0].device)
        for features, target in self.batches:
            logits = self.model.backbone(features, reduction=plan)
            metrics.update(self.model.scores(logits.float()), target.long() if self.model.multilabel else target)
        values = finalize(metrics.compute())
        if self.metric not in values:
            raise ValueError(f"data.monitor names {self.metric!r}, which a clip classifier does not compute ({sorted(values)})")
        return float(values[self.metric])


def cost_function(cfg: DictConfig, backbone, features: torch.Tensor):
    """plan -> cost (FLOPs, or median seconds of a forward of `features`)."""
    if cfg.cost == "flops":
        return lambda plan: float(ast_forward_flops(backbone, plan))
    if cfg.cost == "time":

        @torch.inference_mode()
        def seconds(plan):
            times = alternating_times({"x": lambda: backbone(features, reduction=plan)}, features.device, 1, cfg.cost_repeats)
            return statistics.median(times["x"])

        return seconds
    raise ValueError(f"cost must be flops or time, got {cfg.cost!r}")


def tune(cfg: DictConfig) -> dict:
    if cfg.method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {cfg.method!r}")
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    device = resolve_device(str(cfg.trainer.get("accelerator", "cpu")).replace("gpu", "cuda"))
    model = load_for_inference(cfg.ckpt_path, PLAIN, device)
    backbone = model.backbone
    if not backbone.supports_token_merging:
        raise ValueError(f"ckpt_path={cfg.ckpt_path}: token reduction does not apply to its {type(backbone).__name__} backbone")
    datamodule = instantiate(cfg.data)
    check_compatible(model, datamodule)
    datamodule.prepare_data()
    datamodule.setup("test")
    datamodule.datasets[cfg.split] = datamodule.plain_split(cfg.split)
    batches, clips = [], 0
    with torch.inference_mode():
        for batch in datamodule.loader(cfg.split, datamodule.eval_batch_size, shuffle=False):
            if cfg.max_clips is not None and clips >= cfg.max_clips:
                break
            batches.append((model.frontend(batch["audio"].to(device)), batch["target"].to(device)))
            clips += batch["audio"].shape[0]
    score_plan = Scorer(model, batches, str(cfg.data.monitor).split("/", 1)[-1])
    cost_plan = cost_function(cfg, backbone, batches[0][0][: cfg.cost_batch_size])
    step = cfg.step if cfg.step is not None else default_step(cfg.method, backbone)

    def plan(levels: list[int]) -> TokenReduction | None:
        return plan_reduction(backbone, **level_settings(cfg.method, levels, step))

    result = greedy_search(
        backbone.depth, max_level(cfg.method, backbone, step),
        lambda levels: score_plan(plan(levels)), lambda levels: cost_plan(plan(levels)), cfg.budget, cfg.time_limit_s,
    )
    plain_cost = cost_plan(None)
    found = level_settings(cfg.method, result.levels, step)
    if not result.within_budget:
        log.warning("the search stopped at %.3f of the plain cost, above budget=%s (time_limit_s or every layer at its cap)", result.cost, cfg.budget)

    baselines = {}
    for name, inflection in (("tome_constant", 0.0), ("tome_decreasing", -1.0)):
        candidates = range(1, backbone.num_patches // 2 + 1)

        def relative(r, inflection=inflection):
            return cost_plan(plan_reduction(backbone, r=r, inflection=inflection)) / plain_cost

        r = cheapest_within(list(candidates), relative, cfg.budget)
        if r is None:
            baselines[name] = None
            continue
        reduction = plan_reduction(backbone, r=r, inflection=inflection)
        baselines[name] = {"r": r, "inflection": inflection, "schedule": reduction.schedule, "cost": relative(r), "score": score_plan(reduction)}

    summary = {
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "split": cfg.split,
        "clips": clips,
        "metric": score_plan.metric,
        "method": cfg.method,
        "budget": cfg.budget,
        "cost": cfg.cost,
        "step": step,
        "device": device_description(device),
        "plain_score": result.trajectory[0]["score"],
        "found": {**found, "score": result.score, "cost": result.cost, "within_budget": result.within_budget},
        "evaluations": result.evaluations,
        "seconds": result.seconds,
        "trajectory": result.trajectory,
        "baselines": baselines,
    }
    (run_dir / "search.json").write_text(json.dumps(summary, indent=2) + "\n")
    OmegaConf.save(OmegaConf.create(found), run_dir / "reduction.yaml")
    overrides = " ".join(f"tome.{key}={json.dumps(value).replace(' ', '')}" for key, value in found.items())
    print(f"{score_plan.metric}: plain {summary['plain_score']:.4f}, found {result.score:.4f} at {result.cost:.3f} of the plain {cfg.cost}")
    for name, baseline in baselines.items():
        if baseline is not None:
            print(f"{name}: r={baseline['r']} {score_plan.metric} {baseline['score']:.4f} at {baseline['cost']:.3f}")
    print(f"pass back: {overrides}\nwrote {run_dir / 'reduction.yaml'} and {run_dir / 'search.json'}")
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="tune_reduction")
def main(cfg: DictConfig) -> float:
    return tune(cfg)["found"]["score"]


if __name__ == "__main__":
    main()
