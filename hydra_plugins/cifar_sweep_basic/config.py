"""The sweeper's configuration: the keys of Hydra's basic sweeper, stored under Hydra's own name for it.

Stored as `hydra/sweeper=basic` (Hydra's default), not under a name of its own: Hydra loads plugins after
its core ones, so this entry replaces the core one, and every `cifar-sweep -m` gets it without a line in
conf/config.yaml, where an `override hydra/sweeper` would win over the one an hparams_search config makes.
The interface is Hydra's: max_batch_size and params mean what they mean there."""
# No "from __future__ import annotations" here: Hydra imports plugin modules in a way that leaves
# dataclasses unable to resolve string annotations.

from dataclasses import dataclass
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class CifarBasicSweeperConf:
    _target_: str = "hydra_plugins.cifar_sweep_basic.sweeper.CifarBasicSweeper"
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at once; null: all of them
    params: Optional[Dict[str, str]] = None  # sweeps given in a config (an experiment), before the command line's


ConfigStore.instance().store(group="hydra/sweeper", name="basic", node=CifarBasicSweeperConf, provider="cifar_sweep")
