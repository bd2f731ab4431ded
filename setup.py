"""What pyproject.toml cannot say: the wheel carries the repository's top-level conf/ inside the package.

The repository keeps conf/ at its top level (the layout is fixed), where a checkout and its editable install
read it. A wheel cannot install a top-level conf/ (site-packages/conf would belong to nobody), so the build
maps conf/ to the package cifar_sweep.conf: the installed app finds it at cifar_sweep/conf/
(cifar_sweep/config_dirs.py). Nothing is copied in git; each group folder of conf/ becomes a data package,
found here, so a new group needs no change to this file.
"""

from setuptools import find_namespace_packages, setup

CODE = find_namespace_packages(include=["cifar_sweep*", "multirun_analysis*", "hydra_plugins*"])
CONF = ["cifar_sweep.conf"] + [f"cifar_sweep.conf.{group}" for group in find_namespace_packages(where="conf")]

setup(
    packages=CODE + CONF,
    package_dir={"cifar_sweep.conf": "conf"},
    package_data={package: ["*.yaml"] for package in CONF},
)
