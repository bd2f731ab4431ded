"""Batched augmentation: each transform against a per-image reference, seeding, and the configs."""

from __future__ import annotations

import pytest
import torch

from cifar_sweep.augment import BatchAugment
from cifar_sweep.errors import ConfigError


def batch(n=64, seed=0):
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_off_changes_nothing():
    images = batch()
    augment = BatchAugment()
    assert not augment.active
    assert torch.equal(augment.pixels(images), images)
    floats = images.float()
    assert torch.equal(augment.normalised(floats), floats)


def test_flip_mirrors_about_half_and_leaves_the_rest():
    images = batch(400)
    out = BatchAugment(flip=True, seed=1).pixels(images)
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, images)]
    kept = [torch.equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 150 < sum(flipped) < 250


def test_alternating_flip_flips_each_image_on_alternate_epochs():
    images = batch(400)
    augment = BatchAugment(flip=True, flip_mode="alternate", seed=3, num_images=400)
    order = torch.randperm(400, generator=torch.Generator().manual_seed(0))
    flipped = {}
    for epoch in (1, 2, 3, 4):
        # each epoch in another order, in batches: what matters is the image, not its place in the batch
        order = order[torch.randperm(400, generator=torch.Generator().manual_seed(epoch))]
        for indices in order.split(64):
            out = augment.pixels(images[indices], indices, epoch)
            for index, o in zip(indices.tolist(), out):
                assert torch.equal(o, images[index].flip(2)) or torch.equal(o, images[index])
                flipped[index, epoch] = torch.equal(o, images[index].flip(2))
    assert 150 < sum(flipped[i, 1] for i in range(400)) < 250  # the first epoch: about half, at random
    for index in range(400):
        assert flipped[index, 2] != flipped[index, 1]  # then the other way round, each epoch
        assert flipped[index, 3] == flipped[index, 1] and flipped[index, 4] == flipped[index, 2]
    # the first epoch's choice comes from the seed alone: a resumed run flips as the uninterrupted one
    again = BatchAugment(flip=True, flip_mode="alternate", seed=3, num_images=400)
    assert torch.equal(again.first_flips, augment.first_flips)


def test_reflect_padding_crops_windows_of_the_reflected_image():
    images = batch(100)
    out = BatchAugment(crop_padding=2, crop_pad_mode="reflect", seed=4).pixels(images)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect")
    for o, p in zip(out, padded):
        assert any(torch.equal(p[:, dy : dy + 32, dx : dx + 32], o) for dy in range(5) for dx in range(5))
    # no black border: a reflected pad repeats pixels of the image (the test images have no zero rows)
    assert not torch.equal(out, BatchAugment(crop_padding=2, seed=4).pixels(images))


@pytest.mark.parametrize("key", ["flip_mode", "crop_pad_mode"])
def test_an_unknown_mode_is_one_line_naming_the_key(key):
    with pytest.raises(ConfigError, match=f"augmentation.{key}=sideways is unknown: choose one of"):
        BatchAugment(flip=True, **{key: "sideways"})


def test_crop_is_a_padded_window_of_each_image():
    images = batch(200)
    out = BatchAugment(crop_padding=4, seed=2).pixels(images)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    offsets = set()
    for o, p in zip(out, padded):
        # The per-image reference: the one window of the padded image that equals the output.
        matches = [(dy, dx) for dy in range(9) for dx in range(9) if torch.equal(p[:, dy : dy + 32, dx : dx + 32], o)]
        assert matches, "the crop is not a 32x32 window of the zero-padded image"
        offsets.add(matches[0])
    assert len(offsets) > 40  # offsets are spread over the 81 possible


def test_cutout_zeroes_one_square_of_the_given_size():
    images = torch.ones(300, 3, 32, 32)
    out = BatchAugment(cutout=8, seed=3).normalised(images)
    zeroed = (out == 0).all(dim=1)  # the same square in every channel
    assert torch.equal((out == 0).any(dim=1), zeroed)
    for mask in zeroed:
        rows, cols = mask.nonzero(as_tuple=True)
        assert len(rows) > 0
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == height * width and height <= 8 and width <= 8  # clipped at the border only
    assert (zeroed.sum(dim=(1, 2)) == 64).float().mean() > 0.4  # most squares lie wholly inside


def test_same_seed_same_augmentation():
    images = batch()
    a = BatchAugment(flip=True, crop_padding=4, seed=5)
    b = BatchAugment(flip=True, crop_padding=4, seed=5)
    c = BatchAugment(flip=True, crop_padding=4, seed=6)
    assert torch.equal(a.pixels(images), b.pixels(images))
    assert not torch.equal(a.pixels(images), c.pixels(images))


def test_bad_sizes_name_the_key():
    with pytest.raises(ConfigError, match="augmentation.crop_padding=-1"):
        BatchAugment(crop_padding=-1)


def test_test_time_views_are_flips_and_one_pixel_shifts():
    from cifar_sweep.augment import test_time_views

    images = torch.randn(4, 3, 32, 32)
    assert len(test_time_views(images, "none")) == 1 and test_time_views(images, "none")[0] is images
    flip = test_time_views(images, "flip")
    assert len(flip) == 2 and torch.equal(flip[1], images.flip(3))
    views = test_time_views(images.contiguous(memory_format=torch.channels_last), "flip_shift")
    assert len(views) == 6 and all(view.shape == images.shape for view in views)
    up_left, down_right = views[2], views[4]
    # shifted by one pixel: the content moves, the border row/column is reflected
    assert torch.equal(up_left[..., 1:, 1:], images[..., :-1, :-1])
    assert torch.equal(down_right[..., :-1, :-1], images[..., 1:, 1:])
    assert torch.equal(views[3], up_left.flip(3)) and torch.equal(views[5], down_right.flip(3))
    assert views[2].is_contiguous(memory_format=torch.channels_last)  # the model's memory format is kept
    with pytest.raises(ConfigError, match="trainer.tta=mirror is unknown"):
        test_time_views(images, "mirror")


def test_the_view_counts_match_the_views():
    from cifar_sweep.augment import TEST_TIME_VIEWS, count_test_time_views, test_time_views

    images = torch.randn(2, 3, 32, 32)
    for kind in TEST_TIME_VIEWS:
        assert count_test_time_views(kind) == len(test_time_views(images, kind))
