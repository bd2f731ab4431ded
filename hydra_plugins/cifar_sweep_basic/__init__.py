"""cifar-sweep's basic sweeper for Hydra: Hydra's default sweep (`hydra/sweeper=basic`) that never runs a job over a
finished one or one of another configuration."""
