"""The data layer: every on-disk form, the cache, the splits, and a clear error for each kind of bad data."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from cifar_sweep.data import CLASSES, DataError, load_cifar10

from . import synthetic


def assert_same_as(data, dataset, exact=True):
    (train_images, train_labels), (test_images, test_labels) = dataset
    assert len(data.train) == len(train_labels) and len(data.test) == len(test_labels)
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (3, 32, 32)
    assert torch.equal(torch.bincount(data.train.labels), torch.bincount(train_labels))
    if exact:
        # Image-folder order is class, then file name; compare as multisets per class via sorting.
        for ours, theirs, ours_labels, theirs_labels in (
            (data.train.images, train_images, data.train.labels, train_labels),
            (data.test.images, test_images, data.test.labels, test_labels),
        ):
            for cls in range(10):
                a = ours[ours_labels == cls].reshape(-1, 3072)
                b = theirs[theirs_labels == cls].reshape(-1, 3072)
                assert torch.equal(a.sort(dim=0).values, b.sort(dim=0).values)


def test_python_batches_directory(tmp_path, dataset, cache_dir):
    root = synthetic.write_python_batches(tmp_path / "cifar-10-batches-py", *dataset)
    for given in (root, tmp_path):  # the batches directory itself, or the folder that holds it
        data = load_cifar10(given, cache_dir=cache_dir)
        assert data.form == "python batches"
        assert torch.equal(data.train.images, dataset[0][0]) and torch.equal(data.test.labels, dataset[1][1])


def test_python_batches_archive(tmp_path, dataset, cache_dir):
    batches = synthetic.write_python_batches(tmp_path / "src" / "cifar-10-batches-py", *dataset)
    holder = tmp_path / "downloads"
    holder.mkdir()
    archive = synthetic.write_tar(holder / "cifar-10-python.tar.gz", batches, "cifar-10-batches-py")
    for given in (archive, holder):  # the archive, or the folder torchvision downloads it into
        data = load_cifar10(given, cache_dir=cache_dir)
        assert data.form == "python batches"
        assert torch.equal(data.train.images, dataset[0][0])


@pytest.mark.parametrize("archive_name", ["tree.tar.gz", "tree.tar", "tree.tgz"])
def test_image_folder_archives(tmp_path, png_tree, dataset, cache_dir, archive_name):
    archive = synthetic.write_tar(tmp_path / archive_name, png_tree, "cifar10")
    data = load_cifar10(archive, cache_dir=cache_dir)
    assert data.form == "image folder (png)"
    assert_same_as(data, dataset)


def test_image_folder_tree_and_its_parent(tmp_path, png_tree, dataset, cache_dir):
    assert_same_as(load_cifar10(png_tree, cache_dir=cache_dir), dataset)
    parent = tmp_path / "extracted"
    shutil.copytree(png_tree, parent / "cifar10")  # as `tar xzf cifar10-png.tar.gz` leaves it
    assert_same_as(load_cifar10(parent, cache_dir=cache_dir), dataset)


def test_jpeg_image_folder(tmp_path, dataset, cache_dir):
    root = synthetic.write_image_folder(tmp_path / "jpg", *dataset, suffix="jpg")
    data = load_cifar10(root, cache_dir=cache_dir)
    assert data.form == "image folder (jpg)"
    assert_same_as(data, dataset, exact=False)
    # Lossy, but the same pictures: closer to their originals than to other images of the class.
    originals = dataset[0][0][torch.argsort(dataset[0][1], stable=True)].float()
    error = (data.train.images.float() - originals).abs().mean()
    error_against_others = (data.train.images.float() - originals.roll(1, dims=0)).abs().mean()
    assert error < 0.75 * error_against_others


def test_cache_is_used_then_rebuilt_when_the_source_changes(tmp_path, png_tree, cache_dir):
    archive = synthetic.write_tar(tmp_path / "c.tar.gz", png_tree, "cifar10")
    first = load_cifar10(archive, cache_dir=cache_dir)
    second = load_cifar10(archive, cache_dir=cache_dir)
    assert not first.from_cache and second.from_cache
    assert torch.equal(first.train.images, second.train.images)
    assert len(list(cache_dir.iterdir())) == 1
    # A different dataset at the same path: the cache no longer matches and must not be served.
    other_tree = synthetic.write_image_folder(tmp_path / "other", *synthetic.make_dataset(seed=7))
    synthetic.write_tar(archive, other_tree, "cifar10")
    os.utime(archive, ns=(1, 1))  # a new modification time even on coarse-grained file systems
    third = load_cifar10(archive, cache_dir=cache_dir)
    assert not third.from_cache
    assert not torch.equal(third.train.images, first.train.images)


def test_directory_cache_notices_a_changed_file(tmp_path, png_tree, cache_dir):
    tree = tmp_path / "tree"
    shutil.copytree(png_tree, tree)
    load_cifar10(tree, cache_dir=cache_dir)
    assert load_cifar10(tree, cache_dir=cache_dir).from_cache
    victim = next((tree / "train" / "cat").iterdir())
    shutil.copy(next((tree / "train" / "dog").iterdir()), victim)
    os.utime(victim, ns=(2, 2))
    assert not load_cifar10(tree, cache_dir=cache_dir).from_cache


def test_damaged_cache_is_rebuilt(png_tree, cache_dir, caplog):
    load_cifar10(png_tree, cache_dir=cache_dir)
    (cache_file,) = cache_dir.iterdir()
    cache_file.write_bytes(cache_file.read_bytes()[:1000])  # truncated, as by a full disk
    data = load_cifar10(png_tree, cache_dir=cache_dir)
    assert not data.from_cache and len(data.train) == 200
    assert "damaged cache" in caplog.text
    assert load_cifar10(png_tree, cache_dir=cache_dir).from_cache


def test_unwritable_cache_dir_still_loads(png_tree, tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    data = load_cifar10(png_tree, cache_dir=blocker / "cache")
    assert len(data.train) == 200 and not data.from_cache
    assert "could not write the data cache" in caplog.text


def test_splits_are_seeded_disjoint_and_sized(png_tree, cache_dir):
    data = load_cifar10(png_tree, cache_dir=cache_dir, val_size=50, train_size=100, test_size=20, split_seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (100, 50, 20)
    train_rows = {bytes(x.numpy()) for x in data.train.images}
    val_rows = {bytes(x.numpy()) for x in data.val.images}
    assert not train_rows & val_rows
    again = load_cifar10(png_tree, cache_dir=cache_dir, val_size=50, train_size=100, test_size=20, split_seed=3)
    assert torch.equal(again.val.images, data.val.images) and torch.equal(again.test.images, data.test.images)
    other = load_cifar10(png_tree, cache_dir=cache_dir, val_size=50, train_size=100, split_seed=4)
    assert not torch.equal(other.val.images, data.val.images)
    rest = load_cifar10(png_tree, cache_dir=cache_dir, val_size=50)
    assert (len(rest.train), len(rest.val), len(rest.test)) == (150, 50, 50)
    assert load_cifar10(png_tree, cache_dir=cache_dir).val is None


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"val_size": 150, "train_size": 100}, "ask for more than"),
        ({"val_size": 200}, "ask for more than"),
        ({"train_size": -1}, "data.train_size=-1"),
        ({"test_size": 51}, "data.test_size=51"),
    ],
)
def test_impossible_splits(png_tree, cache_dir, kwargs, expected):
    with pytest.raises(DataError, match=expected):
        load_cifar10(png_tree, cache_dir=cache_dir, **kwargs)


# ---------------------------------------------------------------- bad data: one clear line each


def one_line_error(call) -> str:
    with pytest.raises(DataError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_nothing_there(tmp_path, cache_dir):
    message = one_line_error(lambda: load_cifar10(tmp_path / "nowhere", cache_dir=cache_dir))
    assert "no CIFAR-10 at" in message and "data.root" in message and "data.download=true" in message


def test_failed_download_says_how_to_point_at_a_copy(tmp_path, cache_dir, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    message = one_line_error(lambda: load_cifar10(tmp_path / "empty", cache_dir=cache_dir, download=True))
    assert "could not download" in message and "network is unreachable" in message and "data.root" in message


def test_missing_class_folder(tmp_path, png_tree, cache_dir):
    tree = tmp_path / "tree"
    shutil.copytree(png_tree, tree)
    shutil.rmtree(tree / "test" / "frog")
    message = one_line_error(lambda: load_cifar10(tree, cache_dir=cache_dir))
    assert "missing class folder(s) frog" in message and "test/" in message


def test_unknown_class_folder(tmp_path, png_tree, cache_dir):
    tree = tmp_path / "tree"
    shutil.copytree(png_tree, tree)
    shutil.copytree(tree / "train" / "cat", tree / "train" / "kitten")
    assert "kitten" in one_line_error(lambda: load_cifar10(tree, cache_dir=cache_dir))


def test_wrong_image_size(tmp_path, png_tree, cache_dir):
    tree = tmp_path / "tree"
    shutil.copytree(png_tree, tree)
    victim = sorted((tree / "train" / "ship").iterdir())[0]
    synthetic.save_image(torch.zeros(3, 28, 28, dtype=torch.uint8), victim)
    message = one_line_error(lambda: load_cifar10(tree, cache_dir=cache_dir))
    assert victim.name in message and "28x28" in message and "32x32" in message


def test_corrupt_image(tmp_path, png_tree, cache_dir):
    tree = tmp_path / "tree"
    shutil.copytree(png_tree, tree)
    victim = sorted((tree / "test" / "cat").iterdir())[0]
    victim.write_bytes(b"not a png at all")
    message = one_line_error(lambda: load_cifar10(tree, cache_dir=cache_dir))
    assert victim.name in message and "corrupt" in message


def test_split_folder_missing(tmp_path, png_tree, cache_dir):
    tree = tmp_path / "tree"
    shutil.copytree(png_tree, tree)
    shutil.rmtree(tree / "test")
    message = one_line_error(lambda: load_cifar10(tree, cache_dir=cache_dir))
    assert "no test/" in message


def test_truncated_archive(tmp_path, png_tree, cache_dir):
    archive = synthetic.write_tar(tmp_path / "full.tar.gz", png_tree, "cifar10")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    message = one_line_error(lambda: load_cifar10(truncated, cache_dir=cache_dir))
    assert "truncated or corrupt" in message and "truncated.tar.gz" in message


def test_archive_without_cifar(tmp_path, cache_dir):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hello")
    archive = synthetic.write_tar(tmp_path / "junk.tar.gz", tmp_path / "junk", "junk")
    assert "not CIFAR-10" in one_line_error(lambda: load_cifar10(archive, cache_dir=cache_dir))


def test_missing_python_batch(tmp_path, dataset, cache_dir):
    root = synthetic.write_python_batches(tmp_path / "cifar-10-batches-py", *dataset)
    (root / "data_batch_4").unlink()
    message = one_line_error(lambda: load_cifar10(root, cache_dir=cache_dir))
    assert "data_batch_4" in message and "missing" in message


def test_corrupt_python_batch(tmp_path, dataset, cache_dir):
    root = synthetic.write_python_batches(tmp_path / "cifar-10-batches-py", *dataset)
    (root / "test_batch").write_bytes(b"\x80\x04garbage")
    assert "test_batch is not a readable CIFAR-10 batch" in one_line_error(
        lambda: load_cifar10(root, cache_dir=cache_dir)
    )


def test_file_that_is_not_an_archive(tmp_path, cache_dir):
    stray = tmp_path / "cifar.zip"
    stray.write_bytes(b"PK")
    assert "not a .tar/.tar.gz archive" in one_line_error(lambda: load_cifar10(stray, cache_dir=cache_dir))


def test_classes_are_canonical():
    assert CLASSES[0] == "airplane" and CLASSES[-1] == "truck" and len(CLASSES) == 10
