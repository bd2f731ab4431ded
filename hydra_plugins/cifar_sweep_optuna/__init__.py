"""cifar-sweep's budget-aware Optuna sweeper for Hydra (`hydra/sweeper=cifar_optuna`)."""
