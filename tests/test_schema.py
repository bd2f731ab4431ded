"""The run directory's schema is one definition: the writer and the analysis read the same names, and the
analysis reads them without importing torch."""

from __future__ import annotations

import importlib
import subprocess
import sys

from cifar_sweep import records, schema

from .helpers import REPO

# The module, not the function the package exports under the same name.
load = importlib.import_module("multirun_analysis.load")


def test_the_analysis_imports_no_torch():
    code = (
        "import sys\n"
        "import multirun_analysis.load, multirun_analysis.tables, multirun_analysis.report, multirun_analysis.cli\n"
        "heavy = sorted(name for name in sys.modules if name == 'torch' or name.startswith('torch.'))\n"
        "assert not heavy, heavy[:5]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_writer_and_the_reader_name_the_record_alike():
    assert records.RESULT_FILE == load.RESULT_FILE == schema.RESULT_FILE == "result.json"


def test_a_record_still_running_reads_as_interrupted(tmp_path):
    row = load.row_of(tmp_path, {"status": schema.Status.RUNNING.value, "test_accuracy": 0.5})
    assert row["status"] == schema.Status.INTERRUPTED == "interrupted" and type(row["status"]) is str


def test_the_config_groups_are_the_folders_of_conf():
    from cifar_sweep.schema import CONFIG_GROUPS, RECIPE_GROUPS, VARIANT_GROUPS

    folders = {path.name for path in (REPO / "conf").iterdir() if path.is_dir()}
    # experiment, hparams_search and ablation are global packages that set other groups' keys
    assert set(CONFIG_GROUPS) == folders - set(RECIPE_GROUPS)
    assert set(VARIANT_GROUPS) <= set(CONFIG_GROUPS)
