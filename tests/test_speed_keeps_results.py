"""Speed never changes results: with augmentation off, the fast trainer and the course's plain loop
(PIL images, ToTensor + Normalize one image at a time, a DataLoader) give the same accuracies."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from cifar_sweep.config import TrainerConfig
from cifar_sweep.models import TutorialNet
from cifar_sweep.train import fit

from . import synthetic
from .helpers import tutorial_task

SEED, EPOCHS, BATCH, LR = 11, 2, 16, 0.01


def course_loop(train, test):
    """The tutorial's loop, written plainly; the only liberty is the batch order, drawn as the trainer draws it."""
    torch.manual_seed(SEED)
    model = TutorialNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

    def as_dataset(images, labels):
        return [
            (transform(Image.fromarray(image.permute(1, 2, 0).numpy())), int(label))
            for image, label in zip(images, labels)
        ]

    trainset, testset = as_dataset(*train), as_dataset(*test)
    order_generator = torch.Generator().manual_seed(SEED)
    accuracies = []
    for _ in range(EPOCHS):
        order = torch.randperm(len(trainset), generator=order_generator).tolist()
        model.train()
        for inputs, labels in DataLoader(trainset, batch_size=BATCH, sampler=order):
            optimizer.zero_grad()
            loss = criterion(model(inputs), labels)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for inputs, labels in DataLoader(testset, batch_size=400):
                correct += (model(inputs).argmax(1) == labels).sum().item()
        accuracies.append(correct / len(testset))
    return accuracies, model


def test_fast_loop_matches_the_course_loop():
    train, test = synthetic.make_dataset(train_per_class=30, test_per_class=20, seed=4)
    expected, reference_model = course_loop(train, test)

    torch.manual_seed(SEED)
    task = tutorial_task(train, test, lr=LR, batch_size=BATCH, test_batch_size=400)
    model = task.model
    result = fit(task, TrainerConfig(epochs=EPOCHS, seed=SEED, progress_interval_s=0))
    assert [entry.test_accuracy for entry in result.history[1:]] == expected
    assert 0.1 < expected[-1] < 1.0  # it learned something, and the comparison is not trivially saturated
    for ours, theirs in zip(model.parameters(), reference_model.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_channels_last_changes_only_float_rounding():
    """The trainer's default layout on the CPU and GPU: same training, up to the order of float sums."""
    train, test = synthetic.make_dataset(train_per_class=20, test_per_class=10, seed=5)
    models = []
    for channels_last in (False, True):
        torch.manual_seed(SEED)
        task = tutorial_task(train, test, lr=LR, batch_size=BATCH, channels_last=channels_last)
        fit(task, TrainerConfig(epochs=1, seed=SEED, progress_interval_s=0))
        models.append(task.model)
    assert models[1].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    for plain, fast in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(plain, fast, rtol=1e-4, atol=1e-5)
