"""`cifar-sweep`: the Hydra application. Composes conf/, trains one configuration, records the run.

    cifar-sweep                                   # the tutorial network, 2 epochs
    cifar-sweep model.c1=12 trainer.epochs=5      # any value is an override
    cifar-sweep -m data.batch_size=4,20,100       # one run directory per combination

The return value is the configured objective, so that sweepers (Optuna) can optimise it.
"""

from __future__ import annotations

import itertools
import shutil
import logging
import os
import sys
import tempfile
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig, OmegaConf

from . import costs
from .checkpoint import CHECKPOINT_FILE, Checkpoints
from .augment import count_test_time_views
from .budget import count_config_params, count_params
from .data import CIFAR10, load_cifar10
from .device import configure_backends, describe_hardware, pick_autocast, pick_channels_last, pick_device
from .errors import ConfigError, RunFailed, find_user_error, one_line
from .records import RunRecord
from .studies import TrialPruned, reporter_for
from .train import DeviceSplit, FitResult, Normalize, Settings, fit, format_per_class

log = logging.getLogger("cifar_sweep")
# conf/ sits beside the package at the top of the repository (the layout is fixed); an absolute path makes
# Hydra read it as a directory, whichever way the script was started (console script, -m, tests).
CONFIG_DIR = str(Path(__file__).resolve().parent.parent / "conf")
# What a run can return to a sweeper: one of these, or a list of them for a multi-objective search
# (e.g. objective=[val_accuracy,params] with directions [maximize, minimize]).
OBJECTIVES = ("test_accuracy", "best_test_accuracy", "val_accuracy", "best_val_accuracy", "params", "train_time_s")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    return run(cfg)


def cli() -> None:
    """The `cifar-sweep` console script: Hydra's app, after a check that its overrides compose.

    Hydra reports an unknown option or key in several lines and a hint; composing once first turns
    that into one line (and exit code 2) before anything starts. A multirun is checked on the first
    value of each sweep."""
    problem = composition_problem(sys.argv[1:])
    if problem:
        print(f"cifar-sweep: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    main()


def composition_problem(argv: list[str]) -> str | None:
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:
        return None  # argparse has printed its own usage error; let Hydra's run say it again
    if args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or \
            args.config_name or args.config_dir:
        return None  # not a run of this config: nothing to check
    try:
        # Each override's values (a sweep's, up to 50 of them) tried in turn, the others at their first value.
        choices = []
        for override in OverridesParser.create().parse_overrides(args.overrides):
            if override.is_sweep_override():
                values = list(itertools.islice(override.sweep_string_iterator(), 50))
                choices.append([f"{override.get_key_element()}={value}" for value in values] or [override.input_line])
            else:
                choices.append([override.input_line])
        firsts = [options[0] for options in choices]
        candidates = [firsts] + [firsts[:i] + [option] + firsts[i + 1:]
                                 for i, options in enumerate(choices) for option in options[1:]]
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3", job_name="check"):
            for overrides in candidates:
                cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    except Exception as error:  # Hydra's and OmegaConf's exceptions: all of them mean the same here
        return one_line(error)
    return unwritable(cfg.hydra.sweep.dir if args.multirun else cfg.hydra.run.dir)


def unwritable(directory: str) -> str | None:
    """Why the output directory cannot be made or written, checked on its first existing ancestor."""
    try:
        path = Path(to_absolute_path(str(directory)))
    except Exception:  # an interpolation only Hydra's run can resolve: let it
        return None
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    try:  # a real attempt: permission bits do not stop root, a read-only or special file system does
        shutil.rmtree(tempfile.mkdtemp(prefix=".cifar-sweep-check-", dir=ancestor))
    except OSError as error:
        return (f"cannot write the output directory {path} ({ancestor}: {error.strerror}): set "
                f"hydra.run.dir=... (or hydra.sweep.dir=... for -m) to a writable place")
    return None


def run(cfg: DictConfig) -> float:
    """Train the composed configuration in Hydra's output directory and return the objective."""
    hydra_cfg = HydraConfig.get()
    record = RunRecord(
        hydra_cfg.runtime.output_dir,
        choices={k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/")},
        overrides=list(hydra_cfg.overrides.task),
        job_num=hydra_cfg.job.get("num"),
        study=cfg.trial.study, trial=cfg.trial.number,
        config=OmegaConf.to_container(cfg, resolve=True),
    )
    try:
        return _train(cfg, record)
    except Exception as error:
        user_error = find_user_error(error)
        message = str(user_error) if user_error else f"{type(error).__name__}: {error}"
        record.update(status="failed", error=message)
        if user_error is None:
            raise  # a bug, not bad input: keep the traceback
        if hydra_cfg.mode == RunMode.RUN:
            # One line and exit 1; raising would make Hydra wrap the line in two of its own.
            print(f"cifar-sweep: error: {message}", file=sys.stderr)
            raise SystemExit(1) from None
        # In a multirun, an exception lets Hydra run the remaining jobs before it reports this one.
        log.error("%s", message)
        raise RunFailed(f"cifar-sweep: error: {message}") from None


def _check_config(cfg: DictConfig) -> None:
    """What composition cannot check: fail before any data is loaded or any weight is made."""
    for objective in objectives_of(cfg):
        if objective not in OBJECTIVES:
            raise ConfigError(f"objective={objective} is unknown: choose one of {', '.join(OBJECTIVES)}, "
                              f"or a list of them")
        if objective.endswith("val_accuracy") and not cfg.data.val_size:
            raise ConfigError(f"objective={objective} needs a validation split: set data.val_size (e.g. 5000)")
    for key in ("batch_size", "test_batch_size"):
        if not isinstance(cfg.data[key], int) or cfg.data[key] <= 0:
            raise ConfigError(f"data.{key}={cfg.data[key]} must be a whole number > 0")
    if not isinstance(cfg.trainer.epochs, int) or cfg.trainer.epochs < 0:
        raise ConfigError(f"trainer.epochs={cfg.trainer.epochs} must be a whole number >= 0")
    parse_duration(cfg.trainer.time_budget)
    if isinstance(cfg.trainer.eval_every, bool) or not isinstance(cfg.trainer.eval_every, int) \
            or cfg.trainer.eval_every < 1:
        raise ConfigError(f"trainer.eval_every={cfg.trainer.eval_every} must be a whole number >= 1")
    count_test_time_views(cfg.trainer.tta)  # an unknown name is one line
    decay = cfg.trainer.ema_decay
    if decay is not None and (isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1):
        raise ConfigError(f"trainer.ema_decay={decay} must be a number in (0, 1), e.g. 0.999, or null")


def objectives_of(cfg: DictConfig) -> list[str]:
    return [cfg.objective] if isinstance(cfg.objective, str) else list(cfg.objective)


def parse_duration(value) -> float | None:
    """`1h`, `15m`, `90s`, `2.5h` or a number of seconds -> seconds; null -> None."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0}
    text = str(value).strip().lower()
    try:
        seconds = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"trainer.time_budget={value} is not a duration: write e.g. 1h, 15m, 90s or 3600")
    return seconds


def _measure_costs(model, optimizer, loss_fn, data: CIFAR10, data_cfg: DictConfig, record: RunRecord,
                   params: int) -> tuple[costs.CostReport, costs.OpCount, list[str]]:
    """The forward table (written as network.md/csv) and the operations of one training step per image.

    Counted on the CPU, on copies: the model being trained is not touched."""
    network = costs.describe(model)
    sample = slice(0, min(data_cfg.batch_size, 128))  # operations scale with images: one batch of at most 128
    images = Normalize(data_cfg.mean, data_cfg.std, torch.device("cpu"))(data.train.images[sample])
    train_ops, uncounted = costs.training_ops_per_image(model, optimizer, loss_fn,
                                                        (images, data.train.labels[sample]))
    uncounted = sorted(set(network.uncounted) | set(uncounted))
    if uncounted:
        log.warning("no operation count rule for %s: counted as 0 (please report it)", ", ".join(uncounted))
    record.write_network(costs.table_rows(network), heading=f"# {record.fields['choices'].get('model')}: "
                         f"{params:,} parameters, one 3x32x32 image, eval mode")
    totals = network.totals
    log.info("forward pass of one image: %s operations (%s adds, %s muls, %s max, %s other); training: %s per image",
             *(f"{v:,}" for v in (totals.total, totals.adds, totals.muls, totals.max, totals.other, train_ops.total)))
    return network, train_ops, uncounted


def build(group: str, node: DictConfig, *args, **kwargs):
    """instantiate() a group's config (and call it, for a partial); a bad value is one line naming the group."""
    try:
        built = instantiate(node)
        return built(*args, **kwargs) if args or kwargs else built
    except Exception as error:
        if find_user_error(error) is not None:
            raise
        raise ConfigError(f"{group}: {one_line(error)}: check the {group}.* values (cifar-sweep --cfg job "
                          f"shows them)") from None


def pick_checkpoints(resume, run_dir: Path) -> Checkpoints:
    """Checkpoints in the run dir. trainer.resume: auto (continue what this run dir holds), false (start
    over), or another run dir to continue from (its checkpoint is copied here first)."""
    target = Checkpoints(Path(run_dir) / CHECKPOINT_FILE)
    if resume is False or resume == "false":
        target.path.unlink(missing_ok=True)
    elif resume not in (True, "auto", "true"):
        source = Path(to_absolute_path(str(resume))) / CHECKPOINT_FILE
        if not source.is_file():
            raise ConfigError(f"trainer.resume={resume}: there is no {CHECKPOINT_FILE} there; give the run "
                              f"directory of the run to continue, or trainer.resume=auto")
        if source.resolve() != target.path.resolve():
            shutil.copyfile(source, target.path)
    return target


def _check_budget(params: int, limit: int | None) -> None:
    if limit is not None and params > limit:
        raise ConfigError(f"the model has {params:,} parameters, over budget.max_params={limit:,}: choose smaller "
                          f"widths or depth, or lift the limit with budget.max_params=null")


def _train(cfg: DictConfig, record: RunRecord) -> float:
    _check_config(cfg)
    # Counted on the meta device (no weights made) before any data is read: a bad model fails in a second.
    params = count_config_params(cfg.model)
    record.update(params=params)
    _check_budget(params, cfg.budget.max_params)
    objective = OmegaConf.to_container(cfg.objective) if not isinstance(cfg.objective, str) else cfg.objective
    device = pick_device(cfg.trainer.device)
    configure_backends(device)
    seed = cfg.trainer.seed
    torch.manual_seed(seed)
    deterministic = cfg.trainer.deterministic
    if deterministic == "auto":
        deterministic = device.type == "cpu"  # on a GPU, deterministic kernels cost speed: opt in
    if deterministic:
        # Same config and seed, same accuracies on the CPU; on a GPU some kernels stay nondeterministic.
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False

    data = load_data(cfg.data)
    channels_last = pick_channels_last(cfg.trainer.channels_last, device)
    model = build("model", cfg.model).to(device, memory_format=torch.channels_last if channels_last else None)
    params = count_params(model)
    optimizer = build("optimizer", cfg.optimizer, model.parameters())
    loss_fn = build("loss", cfg.loss)
    augment = build("augmentation", cfg.augmentation, seed=seed + 1, device=device)
    log.info("model %s: %s parameters; device %s", record.fields["choices"].get("model"), f"{params:,}", device)
    network, train_ops, uncounted = _measure_costs(model, optimizer, loss_fn, data, cfg.data, record, params)
    normalize = Normalize(cfg.data.mean, cfg.data.std, device, channels_last=channels_last)
    settings = Settings(
        epochs=cfg.trainer.epochs, batch_size=cfg.data.batch_size, test_batch_size=cfg.data.test_batch_size,
        seed=seed, drop_last=cfg.trainer.drop_last, autocast_dtype=pick_autocast(cfg.trainer.amp, device),
        progress_interval_s=cfg.trainer.progress_interval_s, num_classes=len(data.classes),
        eval_ops_per_image=network.totals, train_ops_per_image=train_ops,
        time_budget_s=parse_duration(cfg.trainer.time_budget), max_epochs=cfg.trainer.max_epochs,
        plateau_patience=cfg.trainer.plateau_patience if cfg.trainer.stop_on_plateau else None,
        plateau_min_delta=cfg.trainer.plateau_min_delta, eval_every=cfg.trainer.eval_every, tta=cfg.trainer.tta,
        ema_decay=cfg.trainer.ema_decay)
    schedule = build("schedule", cfg.schedule)
    trained = torch.compile(model) if cfg.trainer.compile else model  # shares the parameters with `model`

    record.update(params=params, seed=seed, objective=objective, epochs_planned=cfg.trainer.epochs,
                  time_budget_s=settings.time_budget_s,
                  data=data.describe(), hardware=describe_hardware(device),
                  speed={"channels_last": channels_last, "autocast": str(settings.autocast_dtype),
                         "compile": bool(cfg.trainer.compile)},
                  ops_per_image=network.totals.as_dict(), train_ops_per_image=train_ops.as_dict(),
                  uncounted_ops=uncounted,
                  classes=list(data.classes))

    reporter = reporter_for(HydraConfig.get(), cfg.trial.number)  # only for a trial of a pruning search

    def on_evaluation(result: FitResult) -> None:
        history = [entry.as_dict() for entry in result.history]
        record.update(**summarise(result, data.classes), epochs_planned=result.epochs_planned, history=history)
        record.write_metrics(history)
        if reporter is not None and result.history[-1].epoch > 0:
            reporter.report(record.fields[objectives_of(cfg)[0]], result.history[-1].epoch)  # may raise TrialPruned

    to_device = lambda split: DeviceSplit(split.images.to(device), split.labels.to(device))  # noqa: E731
    try:
        result = fit(
            trained, to_device(data.train), to_device(data.test),
            val=to_device(data.val) if data.val is not None else None,
            optimizer=optimizer, loss_fn=loss_fn, settings=settings,
            normalize=normalize,
            augment=augment if augment.active else None, schedule=schedule, on_evaluation=on_evaluation,
            checkpoints=pick_checkpoints(cfg.trainer.resume, record.run_dir))
    except TrialPruned as pruned:
        record.update(status="pruned", stopped_early=str(pruned))
        log.info("%s; run directory %s", pruned, record.run_dir)
        return None  # the sweeper reads `pruned` from result.json and tells Optuna so

    log.info("per-class test accuracy:\n%s", format_per_class(result.final_test, data.classes))
    values = [record.fields[name] for name in objectives_of(cfg)]
    value = values[0] if len(values) == 1 else values
    record.update(status="diverged" if result.diverged else "completed", objective_value=value,
                  stopped_early=result.stopped)
    record.write_plot([entry.as_dict() for entry in result.history],
                      title=f"{record.fields['choices'].get('model')}: {params:,} parameters, "
                            f"final test accuracy {record.fields['test_accuracy']:.2%}")
    log.info("%s = %s; run directory %s", objective, value, record.run_dir)
    if result.diverged:
        return None  # a sweeper must not learn a made-up accuracy from a run that blew up
    return value


def summarise(result: FitResult, classes) -> dict:
    """The result.json fields that follow from the history so far."""
    history = result.history
    best = max(history, key=lambda entry: entry.test_accuracy)
    fields = {
        # the final evaluation: the last epoch's, or after it with test-time augmentation (tta)
        "test_accuracy": result.final_test.accuracy,
        "test_error": result.final_test.error_rate,
        "tta": result.tta,
        "best_test_accuracy": best.test_accuracy,
        "best_epoch": best.epoch,
        "per_class_accuracy": dict(zip(classes, result.final_test.per_class_accuracy)),
        "epochs": history[-1].epoch,
        "train_time_s": result.train_time_s,
        "fit_time_s": result.elapsed_s,  # training and every evaluation: what trainer.time_budget counts
        "eval_time_s": sum(entry.eval_time_s for entry in history),
    }
    if result.tta != "none":
        fields["test_accuracy_without_tta"] = history[-1].test_accuracy
    if result.final_val is not None:
        fields["val_accuracy"] = result.final_val.accuracy
        fields["best_val_accuracy"] = max(entry.val_accuracy for entry in history)
        if result.tta != "none":
            fields["val_accuracy_without_tta"] = history[-1].val_accuracy
    return fields


def load_data(data_cfg: DictConfig) -> CIFAR10:
    absolute = lambda path: os.path.normpath(to_absolute_path(os.path.expanduser(str(path))))  # noqa: E731
    return load_cifar10(
        absolute(data_cfg.root), cache_dir=absolute(data_cfg.cache_dir) if data_cfg.cache_dir else None,
        download=data_cfg.download, val_size=data_cfg.val_size, train_size=data_cfg.train_size,
        test_size=data_cfg.test_size, split_seed=data_cfg.split_seed)
