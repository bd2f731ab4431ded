"""Loading a file never runs code from it: a crafted checkpoint or CIFAR-10 batch is one line; nothing in it runs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from cifar_sweep.checkpoint import Checkpoints
from cifar_sweep.data.formats import DataError, _read_batch
from cifar_sweep.errors import ConfigError


class WritesAFile:
    """Unpickling this calls open(marker, "w") (pickled as io.open): the proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_checkpoint_is_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": 2, "loop": {"model": WritesAFile(marker)}}, path)
    with pytest.raises(ConfigError) as error:
        Checkpoints(path).load()
    message = str(error.value)
    assert "\n" not in message and "io.open" in message and "trainer.resume=false" in message
    assert not marker.exists()


def test_a_real_checkpoint_loads_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = {
        "format": 2,
        "loop": {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "order_generator": torch.Generator().get_state(),
            "history": [{"lr": 0.1}],
        },
    }
    Checkpoints(tmp_path / "checkpoint.pt").save(state)
    loaded = Checkpoints(tmp_path / "checkpoint.pt").load()
    assert torch.equal(loaded["loop"]["model"]["weight"], model.weight.detach())
    assert loaded["loop"]["optimizer"]["param_groups"][0]["momentum"] == 0.9


def batch(data) -> dict:
    return {b"batch_label": b"training batch 1 of 5", b"labels": [0, 1], b"data": data, b"filenames": [b"a", b"b"]}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_real_batch_loads_whatever_its_pickle_protocol(protocol):
    pixels = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    images, labels = _read_batch("data_batch_1", pickle.dumps(batch(pixels), protocol=protocol), "cifar-10-batches-py")
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [0, 1]
    assert torch.equal(images.reshape(2, -1), torch.as_tensor(pixels))


def test_a_crafted_batch_is_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    raw = pickle.dumps(batch(WritesAFile(marker)))
    with pytest.raises(DataError) as error:
        _read_batch("data_batch_1", raw, "cifar-10-batches-py")
    message = str(error.value)
    assert "\n" not in message and "io.open has no place in a CIFAR-10 batch" in message
    assert not marker.exists()
