"""Run directories -> one pandas DataFrame -> comparison tables, plots and the course report.

Reads only what runs wrote to disk (and, when asked, the Optuna storage); never imports torch.

    import multirun_analysis as ma
    df = ma.load(["multirun/2026-11-30/00-24-54"])
    ma.table(df, by=["model"], sort="test_accuracy")
"""

from .load import find_run_dirs, load
from .tables import export, pivot, seeds_summary, table

__all__ = ["export", "find_run_dirs", "load", "pivot", "seeds_summary", "table"]
