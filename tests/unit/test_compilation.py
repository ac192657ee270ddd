"""The compiled model: same answers as eager, fixed batch sizes with padding, no recompilation,
and the eager model whenever compiling is impossible or fails."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from classifier import inference
from classifier.compilation import compiled_batch_sizes, graphs_compiled, padded_size
from classifier.cpu import cpu_supports_bf16
from classifier.inference import Predictor, cheapest_batch
from classifier.testing.models import random_model


class TinyNet(nn.Module):
    """Convolution, batch norm, pooling and a head: what freezing folds, in seconds."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, classes)
        with torch.no_grad():  # batch norms that are not identities, so folding them matters
            for module in self.features:
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@pytest.fixture
def card():
    return random_model(image_size=32)[1]


@pytest.fixture(autouse=True)
def private_compile_cache(tmp_path, monkeypatch):
    """Each test compiles from an empty cache of its own, and forgets torch's compiled graphs."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "compile-cache"))
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def pixels(card, count: int, seed: int = 0) -> np.ndarray:
    size = card.preprocessing.crop_size
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def predictors(card, model=TinyNet, precision="fp32", max_batch_size=8, **options):
    eager = Predictor(model(), card, precision=precision, max_batch_size=max_batch_size)
    compiled = Predictor(
        model(), card, precision=precision, max_batch_size=max_batch_size, **options
    )
    eager.warm_up()
    compiled.warm_up()
    return eager, compiled


def test_compiled_batch_sizes_are_powers_of_two_up_to_the_largest_batch():
    assert compiled_batch_sizes(16) == (1, 2, 4, 8, 16)
    assert compiled_batch_sizes(12) == (1, 2, 4, 8, 12)
    assert compiled_batch_sizes(2) == (1, 2)
    assert compiled_batch_sizes(1) == (1,)


def test_a_batch_pads_to_the_smallest_compiled_size_that_holds_it():
    sizes = (1, 2, 4, 8, 16)
    assert [padded_size(n, sizes) for n in (1, 2, 3, 5, 8, 9, 16)] == [1, 2, 4, 8, 8, 16, 16]
    with pytest.raises(ValueError, match="larger than every compiled size"):
        padded_size(17, sizes)


def test_the_compiled_model_answers_like_the_eager_one_at_every_batch_size(tmp_path, card):
    eager, compiled = predictors(card, compile="inductor", compile_cache_dir=tmp_path / "cache")
    info = compiled.describe_compilation()
    assert info.compiled and info.reason is None, info
    assert info.batch_sizes == [1, 2, 4, 8]
    assert any((tmp_path / "cache").iterdir()), "nothing went to the persistent cache"
    for count in (1, 3, 5, 8):  # 3 and 5 are padded to 4 and 8, and the padding dropped
        images = pixels(card, count, seed=count)
        answer = compiled.predict(images)
        assert answer.shape == (count, 5)
        torch.testing.assert_close(answer, eager.predict(images), atol=1e-5, rtol=1e-4)


def test_nothing_recompiles_after_warm_up_whatever_the_batch_sizes(card):
    _, compiled = predictors(card, compile="inductor")
    graphs = graphs_compiled()
    assert compiled.describe_compilation().graphs == graphs
    rng = np.random.default_rng(1)
    for count in rng.integers(1, 9, 40):
        compiled.predict(pixels(card, int(count)))
    assert graphs_compiled() == graphs
    assert compiled.describe_compilation().recompilations == 0


def test_every_batch_size_compiles_beyond_dynamo_s_recompile_limit(card):
    # dynamo stops compiling a function after recompile_limit graphs and runs the rest eagerly,
    # silently: with a limit of 2, the graphs for 4 and 8 would never be compiled
    from torch._dynamo import config

    graphs = graphs_compiled()
    with config.patch(recompile_limit=2):
        _, compiled = predictors(card, compile="inductor", max_batch_size=8)
    assert compiled.describe_compilation().compiled
    assert graphs_compiled() - graphs == 4  # 1, 2, 4 and 8


@pytest.mark.skipif(not cpu_supports_bf16(), reason="no CPU bf16")
def test_compiled_bf16_agrees_with_eager_bf16(card):
    eager, compiled = predictors(card, precision="bf16", compile="inductor")
    images = pixels(card, 8, seed=3)
    expected, answer = eager.predict(images), compiled.predict(images)
    assert (answer.argmax(1) == expected.argmax(1)).all()
    assert (answer - expected).abs().max() < 0.05


@pytest.fixture
def no_compiler():
    """Inductor finds no C++ compiler, as in a container image without one."""
    from torch._inductor import config

    with config.patch({"cpp.cxx": ("/nonexistent/c++",)}):
        yield


def test_a_failed_compilation_serves_the_eager_model_and_says_why(card, no_compiler, caplog):
    # "inductor" tries even without a compiler (a warm cache would not need one); this one is empty
    eager, compiled = predictors(card, compile="inductor")
    info = compiled.describe_compilation()
    assert not info.compiled and info.batch_sizes == [] and compiled.batch_sizes is None
    assert "compiling failed" in info.reason and "InvalidCxxCompiler" in info.reason
    [line] = [r.getMessage() for r in caplog.records if "serving the eager model" in r.message]
    assert info.reason in line and "\n" not in line
    images = pixels(card, 3)
    torch.testing.assert_close(compiled.predict(images), eager.predict(images))


def test_a_compilation_that_fails_once_is_tried_again_from_a_fresh_start(card, monkeypatch, caplog):
    """As inductor once failed, by chance, on the second of two graphs (an IndexError)."""
    real, calls = inference.compile_model, []

    def failing_once(model, device):
        calls.append(model)
        forward = real(model, device)
        if len(calls) > 1:
            return forward

        def second_graph_fails(images):
            if len(images) > 1:
                raise IndexError("list index out of range")
            return forward(images)

        return second_graph_fails

    monkeypatch.setattr(inference, "compile_model", failing_once)
    _, predictor = predictors(card, compile="inductor")
    info = predictor.describe_compilation()
    assert info.compiled and info.reason is None and len(calls) == 2, info
    [failure] = [r for r in caplog.records if "compiling the model failed" in r.getMessage()]
    assert "attempt 1 of 2" in failure.getMessage() and failure.exc_info
    assert not [r for r in caplog.records if "serving the eager model" in r.getMessage()]


def test_auto_without_a_compiler_serves_the_eager_model_without_trying(card, no_compiler):
    graphs = graphs_compiled()
    _, predictor = predictors(card, compile="auto")
    info = predictor.describe_compilation()
    assert not info.compiled and "no C++ compiler" in info.reason
    assert graphs_compiled() == graphs  # not even tried
    assert predictor.predict(pixels(card, 3)).shape == (3, 5)


def test_off_serves_the_eager_model():
    model, card = TinyNet(), random_model(image_size=32)[1]
    predictor = Predictor(model, card, precision="fp32", compile="off")
    predictor.warm_up()
    assert predictor.forward is predictor.model and predictor.batch_sizes is None
    assert predictor.describe_compilation().reason == "CLASSIFIER_COMPILE is off"


def test_the_batcher_takes_what_costs_least_per_image():
    model, card = TinyNet(), random_model(image_size=32)[1]
    predictor = Predictor(model, card, precision="fp32", max_batch_size=16)
    assert predictor.batch_size_for(40) == 16 and predictor.batch_size_for(9) == 9  # eager
    sizes = (1, 2, 4, 8, 16)
    # a CPU: a batch costs in proportion to its size, so padding 9 up to 16 wastes 7 images
    cpu = {1: 0.02, 2: 0.035, 4: 0.06, 8: 0.11, 16: 0.22}
    assert [cheapest_batch(n, sizes, cpu) for n in (1, 3, 8, 9, 15, 16)] == [1, 2, 8, 8, 8, 16]
    # a GPU: a batch of 16 costs little more than one of 8, so 9 are padded and run at once
    gpu = {1: 0.002, 2: 0.002, 4: 0.0021, 8: 0.0023, 16: 0.0025}
    assert [cheapest_batch(n, sizes, gpu) for n in (1, 3, 9, 15)] == [1, 3, 9, 15]
    # and the predictor asks it about at most its largest batch
    predictor.seconds_per_batch, predictor.serving = cpu, (predictor.model, sizes)
    assert predictor.batch_size_for(40) == 16 and predictor.batch_size_for(9) == 8


def test_compiled_in_the_background_while_the_eager_model_answers(card):
    eager = Predictor(TinyNet(), card, precision="fp32", max_batch_size=4)
    predictor = Predictor(TinyNet(), card, precision="fp32", max_batch_size=4, compile="inductor")
    eager.warm_up()
    graphs = graphs_compiled()
    predictor.warm_up(compile_in_background=True)
    # back at once, the eager model answering; the graphs are still being made
    assert predictor.describe_compilation().compiling and predictor.batch_sizes is None
    images = pixels(card, 3)
    answers = [predictor.predict(images)]
    for _ in range(600):  # at most a minute
        if not predictor.describe_compilation().compiling:
            break
        answers.append(predictor.predict(images))
        time.sleep(0.1)
    info = predictor.describe_compilation()
    assert info.compiled and not info.compiling and info.batch_sizes == [1, 2, 4], info
    assert predictor.batch_sizes == (1, 2, 4) and predictor.forward is not predictor.model
    assert set(predictor.seconds_per_batch) == {1, 2, 4}
    answers.append(predictor.predict(images))  # padded to 4
    for answer in answers:  # eager before, compiled after: the same
        torch.testing.assert_close(answer, eager.predict(images), atol=1e-5, rtol=1e-4)
    assert graphs_compiled() - graphs == 3 and info.recompilations == 0
    assert not [t for t in threading.enumerate() if t.name == "compile"], "the thread ended"


def test_a_failed_background_compilation_leaves_the_eager_model(card, no_compiler, caplog):
    predictor = Predictor(TinyNet(), card, precision="fp32", compile="inductor")
    predictor.warm_up(compile_in_background=True)
    for _ in range(600):
        if not predictor.describe_compilation().compiling:
            break
        time.sleep(0.1)
    info = predictor.describe_compilation()
    assert not info.compiled and "compiling failed" in info.reason, info
    assert predictor.batch_sizes is None and info.recompilations == 0
    assert predictor.predict(pixels(card, 3)).shape == (3, 5)
    assert [r for r in caplog.records if "serving the eager model" in r.getMessage()]
