"""`cifar-sweep`: the Hydra application. Composes conf/, trains one configuration, records the run.

    cifar-sweep                                   # the tutorial network, 2 epochs
    cifar-sweep model.c1=12 trainer.epochs=5      # any value is an override
    cifar-sweep -m data.batch_size=4,20,100       # one run directory per combination

The return value is the configured objective, so that sweepers (Optuna) can optimise it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate, to_absolute_path
from omegaconf import DictConfig

from . import costs, pieces, run_dirs
from .budget import count_params
from .checkpoint import Checkpoints
from .config import check_ranges, trainer_config
from .config_dirs import CONFIG_DIR, with_config_dir
from .console import format_per_class
from .data import CIFAR10, load_cifar10
from .device import Runtime, describe_hardware, describe_precision
from .errors import ConfigError, RunFailed, StorageError, find_user_error, one_line
from .machines import machine_label
from .param_groups import optimizer_parameters
from .passwords import hide_passwords
from .private_apis import hydra_args_parser
from .records import RunRecord
from .schema import CHECKPOINT_FILE, OBJECTIVES, Status
from .studies import TrialPruned, reporter_for
from .train import FitResult, Normalize, Task, fit

log = logging.getLogger("cifar_sweep")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    return run(cfg)


def cli() -> None:
    """The `cifar-sweep` console script: Hydra's app, after a check that its overrides compose.

    Hydra reports an unknown option or key in several lines and a hint; composing once first turns
    that into one line (and exit code 2) before anything starts. A multirun is checked on the first
    value of each sweep. --help and --hydra-help compose the configuration too, outside Hydra's own error
    report: what stops them is one line as well, never a traceback."""
    problem = composition_problem(sys.argv[1:])
    if problem:
        print(f"cifar-sweep: error: {hide_passwords(problem)}", file=sys.stderr)  # it may quote an override
        raise SystemExit(2)
    try:
        if shows_config(sys.argv[1:]):
            main_printing_masked()
        else:
            main()
    except Exception as error:
        if not asks_for_help(sys.argv[1:]):
            raise  # a run reports bad input itself (one line): what reaches here is a bug, traceback and all
        print(f"cifar-sweep: error: {hide_passwords(one_line(error))}", file=sys.stderr)
        raise SystemExit(2) from None


def asks_for_help(argv: list[str]) -> bool:
    args = hydra_args_parser().parse_args(argv)  # main() has parsed the same argv: no usage error here
    return bool(args.help or args.hydra_help)


def main_printing_masked() -> None:
    """main() for --cfg hydra|all and --info, which print Hydra's config: a storage URL's password shows as ***."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            main()
    finally:
        print(hide_passwords(printed.getvalue()), end="")


def shows_config(argv: list[str]) -> bool:
    try:
        args = hydra_args_parser().parse_args(argv)
    except SystemExit:
        return False
    return bool(args.cfg or args.info)


def composition_problem(argv: list[str]) -> str | None:
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        args = hydra_args_parser().parse_args(argv)
    except SystemExit:
        return None  # argparse has printed its own usage error; let Hydra's run say it again
    try:
        overrides = with_config_dir(args.overrides, args.config_dir)  # --config-dir: the user's groups too
    except Exception as error:  # a directory that is not there, an override that does not parse: any command
        return one_line(error)
    if args.help or args.hydra_help or args.info or args.shell_completion or args.config_path or args.config_name:
        return None  # not a run of this config: nothing to check
    try:
        # Each override's values (a sweep's, up to 50 of them) tried in turn, the others at their first value.
        choices = []
        for override in OverridesParser.create().parse_overrides(overrides):
            if override.is_sweep_override():
                values = list(itertools.islice(override.sweep_string_iterator(), 50))
                choices.append([f"{override.get_key_element()}={value}" for value in values] or [override.input_line])
            else:
                choices.append([override.input_line])
        firsts = [options[0] for options in choices]
        candidates = [firsts] + [
            firsts[:i] + [option] + firsts[i + 1 :] for i, options in enumerate(choices) for option in options[1:]
        ]
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
        return (
            f"cannot write the output directory {path} ({ancestor}: {error.strerror}): set "
            f"hydra.run.dir=... (or hydra.sweep.dir=... for -m) to a writable place"
        )
    return None


def run(cfg: DictConfig) -> float:
    """Train the composed configuration in Hydra's output directory and return the objective."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:  # before the record is touched: a conflict leaves the directory as it was
        verdict = run_dirs.check(run_dir, cfg, spare=run_dirs.HYDRA_FILES)
    except ConfigError as error:
        stop(str(error), hydra_cfg.mode)
    if verdict is run_dirs.Verdict.FINISHED:  # the sweepers and the single-run guard have said so already
        finished = run_dirs.read_record(run_dir)
        log.info("%s", run_dirs.finished_message(run_dir, finished))
        return run_dirs.recorded_return(finished)
    record = RunRecord(
        run_dir,
        choices={k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/")},
        overrides=list(hydra_cfg.overrides.task),
        job_num=hydra_cfg.job.get("num"),
        study=cfg.trial.study,
        trial=cfg.trial.number,
        config=run_dirs.recorded_config(cfg),
    )
    try:
        return train_and_record(cfg, record)
    except Exception as error:
        user_error = find_user_error(error)
        message = str(user_error) if user_error else f"{type(error).__name__}: {error}"
        if not isinstance(user_error, StorageError):  # a record that cannot be written stays as last written
            record.update(status=Status.FAILED, error=message)
        if user_error is None:
            raise  # a bug, not bad input: keep the traceback
        stop(message, hydra_cfg.mode)


def stop(message: str, mode: RunMode) -> NoReturn:
    """End the run on bad input: one line and exit 1 in a single run (raising would make Hydra wrap the line in
    two of its own); in a multirun, an exception that lets Hydra run the remaining jobs before it reports."""
    if mode == RunMode.RUN:
        print(f"cifar-sweep: error: {message}", file=sys.stderr)
        raise SystemExit(1) from None
    log.error("%s", message)
    raise RunFailed(f"cifar-sweep: error: {message}") from None


def train_and_record(cfg: DictConfig, record: RunRecord) -> float | list | None:
    """The recipe: check what can be checked before any data is read, build, train, record."""
    params = check_before_data(cfg)
    record.update(
        params=params,
        seed=cfg.trainer.seed,
        objective=objective_of(cfg),
        epochs_planned=cfg.trainer.epochs,
        time_budget_s=pieces.parse_duration(cfg.trainer.time_budget),
    )
    check_budget(params, cfg.budget.max_params)  # after the count is recorded: a failed record says how far over
    runtime = Runtime.from_config(cfg.runtime)
    runtime.apply()
    torch.manual_seed(cfg.trainer.seed)
    data = load_data(cfg.data)
    task = build_task(cfg, data, runtime)
    log.info("model %s: %s parameters; device %s", record.fields["choices"].get("model"), f"{params:,}", runtime.device)
    filled = getattr(task.model, "filled", None)
    if filled:  # model.fill_budget: the widths it chose are in no config file
        log.info(
            "model.fill_budget=%s of %s parameters: widths %s, stem %s",
            cfg.model.fill_budget,
            f"{cfg.model.budget_params:,}",
            filled["widths"],
            filled["stem"],
        )
        record.update(filled_widths=filled)
    uncounted = measure_costs(task, cfg.data, record, params)
    runtime.keep_float32_for_small_batches(str(cfg.runtime.amp), task.eval_ops_per_image.total * cfg.data.batch_size)
    task.autocast_dtype = runtime.autocast_dtype
    log.info("precision: %s", describe_precision(runtime, str(cfg.runtime.amp)))
    if runtime.compile:
        task.model = torch.compile(task.model)  # shares the parameters, and so the optimizer, with the model
    record.update(
        data=data.describe(),
        hardware=describe_hardware(runtime.device),
        speed=runtime.describe(),
        ops_per_image=task.eval_ops_per_image.as_dict(),
        train_ops_per_image=task.train_ops_per_image.as_dict(),
        uncounted_ops=uncounted,
        classes=list(data.classes),
    )
    # under a time budget the machine is part of the result: the log says which one, as result.json does
    log.info("machine: %s, %d threads", machine_label(record.fields), record.fields["hardware"]["threads"])
    trainer = trainer_config(cfg)
    # layers fitted to the data come first: the evaluation before training, and weight averaging, see them fitted
    test_share = None if trainer.test_during_training or task.val is None else len(task.test) / len(task.val)
    chosen = pieces.data_fitting(task.model) + pieces.from_config(trainer, test_share) + pruner_reports(cfg, record)
    try:
        result = fit(
            task,
            trainer,
            chosen,
            on_evaluation=lambda result: record_evaluation(record, result, data.classes),
            checkpoints=pick_checkpoints(trainer.resume, record.run_dir),
        )
    except TrialPruned as pruned:
        record.update(status=Status.PRUNED, stopped_early=str(pruned))
        log.info("%s; run directory %s", pruned, record.run_dir)
        return None  # the sweeper reads `pruned` from result.json and tells Optuna so
    return finish(cfg, record, result, data.classes, params)


def check_before_data(cfg: DictConfig) -> int:
    """What composition cannot check, before any data is loaded or any weight is made; returns the parameters
    of the model, counted on the meta device (no weights made), so that a model over budget fails in a second."""
    check_ranges(cfg)
    for objective in objectives_of(cfg):
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"objective={objective} is unknown: choose one of {', '.join(OBJECTIVES)}, or a list of them"
            )
        if objective.endswith("val_accuracy") and not cfg.data.val_size:
            raise ConfigError(f"objective={objective} needs a validation split: set data.val_size (e.g. 5000)")
    if not cfg.trainer.test_during_training and not cfg.data.val_size:
        raise ConfigError(
            "trainer.test_during_training=false needs a validation split to evaluate during training: set "
            "data.val_size (e.g. 5000), or trainer.test_during_training=true"
        )
    pieces.parse_duration(cfg.trainer.time_budget)
    return check_buildable(cfg)


def check_buildable(cfg: DictConfig) -> int:
    """Build what the groups' `_target_`s make, without data or weights (the model on the meta device, the optimizer
    over its parameters), so that their constructors' checks fail before any data is read; returns the model's
    parameters, counted as cifar_sweep.budget counts them."""
    with torch.device("meta"):
        model = build("model", cfg.model)
        trained = optimizer_parameters(model, cfg.trainer.norm_lr_factor, cfg.optimizer.get("lr"))
        build("optimizer", cfg.optimizer, trained)
    build("loss", cfg.loss)
    build("schedule", cfg.schedule)
    build("augmentation", cfg.augmentation, seed=0, device="cpu", num_images=1)
    return count_params(model)


def check_budget(params: int, limit: int | None) -> None:
    if limit is not None and params > limit:
        raise ConfigError(
            f"the model has {params:,} parameters, over budget.max_params={limit:,}: choose smaller "
            f"widths or depth, or lift the limit with budget.max_params=null"
        )


def objectives_of(cfg: DictConfig) -> list[str]:
    return [cfg.objective] if isinstance(cfg.objective, str) else list(cfg.objective)


def objective_of(cfg: DictConfig) -> str | list[str]:
    return cfg.objective if isinstance(cfg.objective, str) else list(cfg.objective)


def build_task(cfg: DictConfig, data: CIFAR10, runtime: Runtime) -> Task:
    """The model, its optimizer, loss, augmentation and schedule from their groups; the data on the device."""
    device = runtime.device
    model = build("model", cfg.model).to(device, memory_format=runtime.memory_format)
    trained = optimizer_parameters(model, cfg.trainer.norm_lr_factor, cfg.optimizer.get("lr"))
    optimizer = build("optimizer", cfg.optimizer, trained)
    loss_fn = build("loss", cfg.loss)
    augment = build(
        "augmentation", cfg.augmentation, seed=cfg.trainer.seed + 1, device=device, num_images=len(data.train)
    )
    schedule = build("schedule", cfg.schedule)
    return Task(
        model=model,
        optimizer=optimizer,
        loss_fn=loss_fn,
        train=data.train.to(device),
        test=data.test.to(device),
        val=data.val.to(device) if data.val is not None else None,
        normalize=Normalize(cfg.data.mean, cfg.data.std, device, channels_last=runtime.channels_last),
        batch_size=cfg.data.batch_size,
        test_batch_size=cfg.data.test_batch_size,
        augment=augment if augment.active else None,
        schedule=schedule,
        autocast_dtype=runtime.autocast_dtype,
        num_classes=len(data.classes),
    )


def build(group: str, node: DictConfig, *args, **kwargs):
    """instantiate() a group's config (and call it, for a partial); a bad value is one line naming the group."""
    try:
        built = instantiate(node)
        return built(*args, **kwargs) if args or kwargs else built
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is not None:
            raise user_error from None  # the one-line error itself, not Hydra's wrapping of it
        raise ConfigError(
            f"{group}: {one_line(error)}: check the {group}.* values (cifar-sweep --cfg job shows them)"
        ) from None


def measure_costs(task: Task, data_cfg: DictConfig, record: RunRecord, params: int) -> list[str]:
    """The forward table (written as network.md/csv) and the operations of one training step per image, set on
    the task; returns the operators that have no counting rule. Counted on the CPU, on copies: the model being
    trained is not touched. Done before torch.compile wraps the model."""
    network = costs.describe(task.model)
    sample = slice(0, min(data_cfg.batch_size, 128))  # operations scale with images: one batch of at most 128
    images = Normalize(data_cfg.mean, data_cfg.std, torch.device("cpu"))(task.train.images[sample].cpu())
    train_ops, uncounted = costs.training_ops_per_image(
        task.model, task.optimizer, task.loss_fn, (images, task.train.labels[sample].cpu())
    )
    uncounted = sorted(set(network.uncounted) | set(uncounted))
    if uncounted:
        log.warning("no operation count rule for %s: counted as 0 (please report it)", ", ".join(uncounted))
    record.write_network(
        costs.table_rows(network),
        heading=f"# {record.fields['choices'].get('model')}: {params:,} parameters, one 3x32x32 image, eval mode",
    )
    totals = network.totals
    log.info(
        "forward pass of one image: %s operations (%s adds, %s muls, %s max, %s other); training: %s per image",
        *(f"{v:,}" for v in (totals.total, totals.adds, totals.muls, totals.max, totals.other, train_ops.total)),
    )
    task.eval_ops_per_image, task.train_ops_per_image = totals, train_ops
    return uncounted


def pruner_reports(cfg: DictConfig, record: RunRecord) -> list[pieces.Piece]:
    """In a pruning search, the piece that reports the objective after each evaluation to this run's trial."""
    reporter = reporter_for(HydraConfig.get(), cfg.trial.number)
    if reporter is None:
        return []
    objective = objectives_of(cfg)[0]
    # The record is updated before the pieces hear of an evaluation, and holds every objective (params too).
    return [pieces.PrunerReports(objective=lambda: record.fields[objective], report=reporter.report)]


def record_evaluation(record: RunRecord, result: FitResult, classes) -> None:
    """After every evaluation: result.json and metrics.csv as far as the run has come."""
    history = [entry.as_dict() for entry in result.history]
    record.update(**result.summary(classes), history=history)
    record.write_metrics(history)


def finish(cfg: DictConfig, record: RunRecord, result: FitResult, classes, params: int) -> float | list | None:
    log.info("per-class test accuracy:\n%s", format_per_class(result.final_test, classes))
    values = [record.fields[name] for name in objectives_of(cfg)]
    value = values[0] if len(values) == 1 else values
    # The plot before the final status: a run killed in between is still unfinished, and its rerun draws it.
    record.write_plot(
        [entry.as_dict() for entry in result.history],
        title=f"{record.fields['choices'].get('model')}: {params:,} parameters, "
        f"final test accuracy {record.fields['test_accuracy']:.2%}",
    )
    record.update(
        status=Status.DIVERGED if result.diverged else Status.COMPLETED,
        objective_value=value,
        stopped_early=result.stopped,
    )
    log.info("%s = %s; run directory %s", objective_of(cfg), value, record.run_dir)
    if result.diverged:
        return None  # a sweeper must not learn a made-up accuracy from a run that blew up
    return value


def pick_checkpoints(resume: str, run_dir: Path) -> Checkpoints:
    """Checkpoints in the run dir. trainer.resume: auto (continue what this run dir holds), false (start
    over), or another run dir to continue from (its checkpoint is copied here first)."""
    target = Checkpoints(Path(run_dir) / CHECKPOINT_FILE)
    choice = str(resume).strip()
    if choice.lower() == "false":
        target.path.unlink(missing_ok=True)
    elif choice.lower() not in ("auto", "true"):
        source = Path(to_absolute_path(choice)) / CHECKPOINT_FILE
        if not source.is_file():
            raise ConfigError(
                f"trainer.resume={resume}: there is no {CHECKPOINT_FILE} there; give the run "
                f"directory of the run to continue, or trainer.resume=auto"
            )
        if source.resolve() != target.path.resolve():
            shutil.copyfile(source, target.path)
    return target


def load_data(data_cfg: DictConfig) -> CIFAR10:
    absolute = lambda path: os.path.normpath(to_absolute_path(os.path.expanduser(str(path))))  # noqa: E731
    return load_cifar10(
        absolute(data_cfg.root),
        cache_dir=absolute(data_cfg.cache_dir) if data_cfg.cache_dir else None,
        download=data_cfg.download,
        val_size=data_cfg.val_size,
        train_size=data_cfg.train_size,
        test_size=data_cfg.test_size,
        split_seed=data_cfg.split_seed,
    )
