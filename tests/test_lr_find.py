"""The learning-rate finder: a sensible suggestion, and no trace on the model, optimiser or RNG."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlcourse.errors import BadInput
from dlcourse.training.lr_find import lr_find, steepest, suggest, valley


def tiny_problem(seed: int = 0):
    """A learnable 3-class problem of 8x8 one-channel images, and a small CNN with BatchNorm."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.arange(192) % 3
    images = torch.randn(192, 1, 8, 8, generator=generator) * 0.5
    images[:, 0, :, :] += (targets.float() - 1).view(-1, 1, 1)  # class shifts the brightness
    loader = DataLoader(TensorDataset(images, targets), batch_size=16, shuffle=True)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Dropout(0.1), torch.nn.Linear(8, 3),
    )
    return model, loader


def test_lr_find_suggests_a_finite_lr_inside_the_range_and_leaves_no_trace():
    model, loader = tiny_problem()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    # Give the optimiser some state (moments, step counts) to prove the finder does not touch it.
    loss = torch.nn.functional.cross_entropy(model(next(iter(loader))[0]), next(iter(loader))[1])
    loss.backward()
    optimizer.step()
    model.eval()  # a mode the finder must restore too
    weights = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    rng = torch.get_rng_state()

    result = lr_find(model, loader, torch.nn.functional.cross_entropy, optimizer=optimizer,
                     start_lr=1e-6, end_lr=10, num_it=60)

    assert len(result.lrs) == len(result.losses) == len(result.smoothed) <= 60
    assert result.lrs[0] == pytest.approx(1e-6) and result.lrs == sorted(result.lrs)
    for name in ("steep", "valley"):
        lr = getattr(result, name)
        assert math.isfinite(lr) and 1e-6 <= lr <= 10 and result.lrs[0] <= lr <= result.lrs[-1], (name, lr)
    assert result.suggestions == {"valley": result.valley, "steep": result.steep}
    # No trace: weights (BatchNorm buffers included) bit for bit, optimiser state, mode, RNG.
    after = model.state_dict()
    assert after.keys() == weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(after[name], tensor), name
    _assert_same(optimizer.state_dict(), opt_state)
    assert not model.training
    assert torch.equal(torch.get_rng_state(), rng)


def test_lr_find_stops_when_the_loss_explodes():
    model, loader = tiny_problem(1)
    result = lr_find(model, loader, torch.nn.functional.cross_entropy,
                     optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                     start_lr=1e-4, end_lr=1e6, num_it=80)
    assert result.stopped_early and len(result.lrs) < 80
    last = result.smoothed[-1]
    assert not math.isfinite(last) or last > 4 * min(result.smoothed[:-1])
    assert 1e-4 <= result.valley <= result.lrs[-1] and 1e-4 <= result.steep <= result.lrs[-1]


def test_lr_find_keeps_frozen_parameters_frozen_and_a_loader_generator_unchanged():
    model, _ = tiny_problem(2)
    for parameter in model[0].parameters():
        parameter.requires_grad_(False)
    images, targets = torch.randn(64, 1, 8, 8), torch.arange(64) % 3
    generator = torch.Generator().manual_seed(7)
    loader = DataLoader(TensorDataset(images, targets), batch_size=8, shuffle=True, generator=generator)
    state = generator.get_state()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    lr_find(model, loader, torch.nn.functional.cross_entropy, optimizer=optimizer, num_it=20)
    assert [p.requires_grad for p in model[0].parameters()] == [False, False]
    assert torch.equal(generator.get_state(), state)


def test_suggestions_on_a_known_curve():
    lrs = [10 ** (-6 + 6 * i / 99) for i in range(100)]
    # flat, then a descent between points 30 and 70 (steepest at 50), then an explosion
    losses = [2.0 - 1.5 / (1 + math.exp(-(i - 50) / 5)) if i < 85 else 0.5 + (i - 84) ** 2 for i in range(100)]
    steep, low = suggest(lrs, losses)
    assert steep == pytest.approx(lrs[50], rel=0.2)
    assert lrs[30] < low < lrs[85]
    assert steepest(tuple(lrs[:3]), (3.0, 1.0, 0.9)) == lrs[0]
    # fastai's arithmetic: a descent over all 12 points -> index -1 + int(12/3) + int(12/6) = 5
    assert valley(tuple(lrs[:12]), tuple(12.0 - i for i in range(12))) == lrs[5]


def test_lr_find_refuses_a_bad_range_and_an_empty_loader():
    model, loader = tiny_problem()
    with pytest.raises(BadInput, match="0 < start < end"):
        lr_find(model, loader, torch.nn.functional.cross_entropy, start_lr=1, end_lr=0.1)
    with pytest.raises(BadInput, match="at least"):
        lr_find(model, loader, torch.nn.functional.cross_entropy, num_it=3)
    with pytest.raises(BadInput, match="no training batches"):
        lr_find(model, [], torch.nn.functional.cross_entropy, num_it=10)


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b
