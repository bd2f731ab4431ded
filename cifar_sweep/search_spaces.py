"""Search spaces that Hydra's sweep grammar cannot write, for hydra.sweeper.custom_search_space.

    hydra.sweeper.custom_search_space: cifar_sweep.search_spaces.network_shape

Each function is called by the Optuna sweeper with the trial's composed config and its Optuna trial, suggests
its parameters on the trial (so that the sampler learns from them and the study records them), and returns
the overrides they make.
"""

from __future__ import annotations

from typing import Any

BLOCKS = ("conv", "stack3x3", "inception")  # what opens a stage (and pools after it)
ENTRIES = ("none", "stem", "whiten")  # what the image meets first: the first stage, a 3x3 stem conv, whitening
BASE_WIDTH = 64  # the first stage's proportion; model.fill_budget scales every width, so only ratios matter


def network_shape(cfg: Any, trial: Any) -> dict[str, Any]:
    """The shape of a network in the ResNet-9 family, its widths filling a searched share of the budget.

    A network is an entry (none, a 3x3 stem conv, or airbench's frozen 2x2 patch whitening), then `stages`
    stages, each an opening block (conv k x k, two 3x3 convs, or an inception block) with a 2x2 max pool after
    it, then 0 to 2 residual blocks at the same width (ResNet-9 has 1, 0, 1); each stage's width is the one before
    times its own `growth_<stage>`, and all are scaled together by model.fill_budget to `fill_budget` of
    budget.max_params, so every proposal is within the budget and uses the share it chose. Pooling before batch
    norm (cheaper, the same parameters) is searched where every stage opens with a convolution.

    The hand-designed networks are points of this space: ResNet-9 (model=resnet9) is 3 stages, a stem, growths 2
    and 2, residuals 1, 0, 1; resnet9_early the same with growths 2 and 1.375 (hparams_search=arch_250k_warm
    enqueues it with best_250k_cpu's recipe, so that the search starts from the bar it has to beat)."""
    stages = trial.suggest_int("stages", 2, 4)
    entry = trial.suggest_categorical("entry", list(ENTRIES))
    fill = trial.suggest_float("fill_budget", 0.6, 1.0)
    kernel = trial.suggest_categorical("kernel", [3, 5])
    widths, blocks, kinds, pools = [], [], [], []
    proportion = float(BASE_WIDTH)
    for stage in range(1, stages + 1):
        if stage > 1:
            # ResNet-9 doubles its width at each stage; more than that over 4 stages leaves the first with a few
            # channels under 250,000 parameters
            proportion *= trial.suggest_float(f"growth_{stage}", 1.0, 2.0)
        width = round(proportion)
        kind = trial.suggest_categorical(f"block_{stage}", list(BLOCKS))
        residuals = trial.suggest_int(f"residuals_{stage}", 0, 2)
        widths.append(width), blocks.append(1), kinds.append(kind), pools.append("max")
        if residuals:
            widths.append(width), blocks.append(residuals), kinds.append("residual"), pools.append("none")
    overrides: dict[str, Any] = {
        "model.widths": _list(widths),
        "model.blocks": _list(blocks),
        "model.block": _list(kinds),
        "model.downsample": _list(pools),
        "model.kernel": kernel,
        "model.fill_budget": round(fill, 4),
        "model.stem": BASE_WIDTH // 2 if entry == "stem" else "null",
        "model.whiten": 2 if entry == "whiten" else "null",
    }
    if "inception" not in kinds:
        overrides["model.pool_before_norm"] = trial.suggest_categorical("pool_before_norm", [True, False])
    return overrides


def _list(values: list) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"
