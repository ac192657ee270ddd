"""Residual blocks that compute the identity are skipped when served, and nothing else changes."""

from __future__ import annotations

import copy

import pytest
import torch

from classifier.artifact import load_model, save_model
from classifier.identity_blocks import is_identity, residual_blocks, skip_identity_blocks
from classifier.testing.models import random_model, random_network


def answers_and_gradients(model, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs, and the gradients of one class's score with respect to the inputs
    (what integrated gradients sums)."""
    inputs = inputs.clone().requires_grad_(True)
    outputs = model(inputs)
    outputs[:, 1].sum().backward()
    return outputs.detach(), inputs.grad


def test_the_demo_shape_computes_4_blocks_with_the_same_answers_and_gradients():
    model = random_network(5, seed=1, blocks_per_stage=1)
    served = copy.deepcopy(model)
    assert skip_identity_blocks(served) == 12 and residual_blocks(served) == 4
    inputs = torch.randn(3, 3, 64, 64)
    outputs, gradients = answers_and_gradients(model, inputs)
    served_outputs, served_gradients = answers_and_gradients(served, inputs)
    assert torch.equal(served_outputs, outputs)
    assert torch.equal(served_gradients, gradients)


def test_blocks_at_work_are_kept():
    model = random_network(5, seed=2)
    assert skip_identity_blocks(model) == 0 and residual_blocks(model) == 16
    # the first block of a stage changes the shortcut: never the identity, whatever its scale
    untrained = random_network(5, blocks_per_stage=0)
    first = untrained.layer2[0]
    assert not first.bn3.weight.any() and not is_identity(first)
    assert skip_identity_blocks(untrained) == 12


@pytest.mark.parametrize("parameter", ["weight", "bias"])
def test_a_block_whose_last_norm_is_not_all_zero_is_kept(parameter):
    block = random_network(5, blocks_per_stage=1).layer3[2]
    assert is_identity(block)
    with torch.no_grad():
        getattr(block.bn3, parameter)[7] = 1e-6
    assert not is_identity(block)


@pytest.mark.parametrize(("blocks_per_stage", "computed"), [(1, 4), (None, 16)])
def test_a_loaded_model_computes_only_its_working_blocks(bentoml_home, blocks_per_stage, computed):
    model, card = random_model(seed=4, blocks_per_stage=blocks_per_stage)
    stored = save_model(model, card)
    loaded, _ = load_model(stored.path, stored.info.metadata)
    assert residual_blocks(loaded) == computed
    inputs = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(inputs), model(inputs))
