"""What a run directory holds, defined once: file names, statuses, result fields, config groups.

The trainer writes run directories; the sweeper and the analysis read them. All three import the
names from here, and this module imports nothing heavy (no torch, no pandas), so that the analysis
comes up instantly.
"""

from __future__ import annotations

from enum import Enum

# The files of a run directory.
RESULT_FILE = "result.json"  # the record: status, accuracies, history, config (rewritten atomically)
METRICS_FILE = "metrics.csv"  # one row per evaluation
PLOT_FILE = "accuracy.png"  # accuracy against epochs
NETWORK_FILES = ("network.md", "network.csv")  # the layer table: Fn, Xn, Wn, operations
CHECKPOINT_FILE = "checkpoint.pt"  # the last good state, to continue a killed run
LOG_FILE = "cifar_sweep.log"  # Hydra's job log (hydra.job.name is cifar_sweep)
PREVIOUS_DIR = "previous"  # in a run dir: the records a start-over replaced, previous/1/, previous/2/, ...


class Status(str, Enum):
    """How a run (or a sweep's trial) ended, as result.json's `status` and the trial's user attribute.

    A str Enum: `Status.COMPLETED == "completed"`, and json writes it as the plain string."""

    RUNNING = "running"  # written while training; read back from a dead process, it means interrupted
    COMPLETED = "completed"
    DIVERGED = "diverged"  # the training loss stopped being finite; no objective is reported
    FAILED = "failed"  # an error (its message in `error`)
    PRUNED = "pruned"  # stopped early by its trial's pruner
    INTERRUPTED = "interrupted"  # what the analysis calls a `running` record that nothing writes any more
    # Trials the sweeper never launched:
    OVER_BUDGET = "over_budget"  # more parameters than the budget
    INVALID = "invalid"  # an impossible architecture
    SURPLUS = "surplus"  # another worker reached n_trials first

    def __str__(self) -> str:
        return self.value


# result.json's fields. The headline first and the bulky parts last, so that `head result.json` answers
# "how did it do?".
HEADLINE_FIELDS = (
    "status",
    "error",
    "objective",
    "objective_value",
    "test_accuracy",
    "test_error",
    "best_test_accuracy",
    "best_epoch",
    "val_accuracy",
    "best_val_accuracy",
    "params",
    "epochs",
    "epochs_planned",
    "train_time_s",
    "eval_time_s",
    "total_time_s",
    "per_class_accuracy",
)
BULKY_FIELDS = ("history", "config")
# The other fields a completed run writes (tests check that every one is there).
DETAIL_FIELDS = (
    "started_at",
    "finished_at",
    "choices",
    "overrides",
    "job_num",
    "study",
    "trial",
    "seed",
    "time_budget_s",
    "fit_time_s",
    "tta",
    "data",
    "hardware",
    "speed",
    "ops_per_image",
    "train_ops_per_image",
    "uncounted_ops",
    "classes",
    "stopped_early",
)

# What a run can return to a sweeper (and records as objective_value): one of these, or a list of them for
# a multi-objective search (e.g. objective=[val_accuracy,params] with directions [maximize, minimize]).
OBJECTIVES = ("test_accuracy", "best_test_accuracy", "val_accuracy", "best_val_accuracy", "params", "train_time_s")

# The config groups a run chooses from (conf/<group>/), as recorded in result.json's `choices`.
CONFIG_GROUPS = ("data", "model", "activation", "optimizer", "loss", "augmentation", "schedule", "trainer", "runtime")
# The folders of conf/ that are recipes, not groups: global packages that set keys across the groups (an
# experiment, a search, one technique of an ablation); a run records the option chosen as it does a group's.
RECIPE_GROUPS = ("experiment", "hparams_search", "ablation")
# The groups whose choice makes a variant of a study (a report groups runs by the ones that differ).
VARIANT_GROUPS = ("model", "activation", "optimizer", "loss", "augmentation", "schedule")

# Keys (and whole sections, by prefix) that do not change what a run computes: run_dirs compares a record with a
# configuration without them; the analysis does not tell runs apart by them.
NOT_COMPARED = (
    "trainer.resume",
    "trainer.keep_previous",
    "trainer.progress_interval_s",
    "data.root",
    "data.cache_dir",
    "data.download",
    "data.test_batch_size",  # evaluation in inference mode: the batch changes the speed (predictions: rounding only)
    "runtime.",  # where and how fast: device, precision, memory layout, compile
    "trial.",  # which trial of which search runs it: a retried trial continues its predecessor's run
    "model.budget_params",  # budget.max_params again (for model.fill_budget), which is compared
)
# Keys added after runs were recorded without them, with the value that computes what those runs did: a
# record that lacks one of these keys matches a config holding that value (a run of an older version
# continues, or is reported finished, under a newer one). A new key that changes behaviour by default
# does not belong here.
ADDED_KEYS = {
    "model.pool_before_norm": False,
    "model.dirac_init": False,
    "model.freeze_norm_scale": False,
    "model.whiten": None,
    "model.fill_budget": None,
    "trainer.norm_lr_factor": 1.0,
    "trainer.lookahead_every": None,
    "trainer.lookahead_decay": 0.95,
    "trainer.test_during_training": True,
    "augmentation.flip_mode": "random",
    "augmentation.crop_pad_mode": "zeros",
}
