"""Run directories -> one pandas DataFrame -> comparison tables, plots and the course report.

Reads only what runs wrote to disk (and, when asked, the Optuna storage); never imports torch.

    import multirun_analysis as ma
    df = ma.load(["multirun/2026-11-30/00-24-54"])
    ma.table(df)                              # one row per variant: the keys whose value differs between runs
    ma.table(df, columns=["batch_size"], baseline="batch_size == 20")
"""

from .load import find_run_dirs, load
from .report import write_report
from .tables import export, pivot, seeds_summary, table
from .variants import variant_columns

__all__ = ["export", "find_run_dirs", "load", "pivot", "seeds_summary", "table", "variant_columns", "write_report"]
