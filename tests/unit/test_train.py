"""Training: shapes rendering, fine-tuning, and ImageNet weights from a file or a clear failure."""

from __future__ import annotations

import hashlib

import bentoml
import numpy as np
import pytest
import torch
from torch import nn
from torchvision.models import ResNet50_Weights

from classifier.artifact import build_model, load_model, sha256_of
from classifier.identity_blocks import stages
from train.__main__ import build_parser, main
from train.budget import seconds_per_step, steps_within
from train.demo import DEFAULT_BUDGET_S, DemoConfig
from train.finetune import (
    REPLAN_EVERY,
    CurriculumSampler,
    FinetuneConfig,
    _next_replan,
    finetune,
    one_cycle,
)
from train.shapes import SHAPES, STYLES, _image_seed, clean_images, render, write_dataset
from train.steps import (
    ConvolutionAsMatmul,
    first_blocks_only,
    flipped_and_turned,
    strided_convolutions_as_matmuls,
    train_step,
    training_optimizer,
    training_precision,
)
from train.whitening import whiten_convolution


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A torchvision-format resnet50 checkpoint, wrapped the way training scripts often save it."""
    torch.manual_seed(1)
    state_dict = build_model(1000).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state_dict.items()}}, path)
    return path


def test_shapes_are_deterministic_in_every_style():
    for shape in SHAPES:
        for style in STYLES:
            first = np.asarray(render(shape, style, 48, seed=5))
            assert first.shape == (48, 48, 3)
            assert np.array_equal(first, np.asarray(render(shape, style, 48, seed=5)))
    assert not np.array_equal(
        np.asarray(render("circle", "filled", 48, seed=1)),
        np.asarray(render("circle", "filled", 48, seed=2)),
    )


def test_the_renderer_draws_the_images_the_demo_was_tuned_on():
    """The first hundred of each shape of the demo's training set, hashed: a change to
    train/shapes.py (or to Pillow) that changes any of them shows here, and the figures in
    docs/demo-model.md were measured on other images."""
    digest = hashlib.sha256()
    for n in range(100):
        for label, shape in enumerate(SHAPES):
            image = render(shape, STYLES[n % len(STYLES)], 66, seed=_image_seed(0, label, n))
            digest.update(np.asarray(image).tobytes())
    assert digest.hexdigest() == "aa52f706c08827b232f43254b394321420e853a347a9743b876ee7e14d3f438a"


def test_dataset_is_an_image_folder_tree(tmp_path):
    root = write_dataset(tmp_path, per_class=3, size=32)
    assert sorted(p.name for p in root.iterdir()) == sorted(SHAPES)
    assert all(len(list((root / shape).glob("*.png"))) == 3 for shape in SHAPES)


def test_the_dataset_is_the_same_however_many_processes_draw_it(tmp_path):
    alone = write_dataset(tmp_path / "one", per_class=60, size=32, processes=1)
    shared = write_dataset(tmp_path / "two", per_class=60, size=32, processes=2)
    files = sorted(p.relative_to(alone) for p in alone.rglob("*.png"))
    assert len(files) == 5 * 60
    assert files == sorted(p.relative_to(shared) for p in shared.rglob("*.png"))
    assert all((alone / f).read_bytes() == (shared / f).read_bytes() for f in files)


def test_the_clean_images_are_over_half_of_the_tree_and_known_without_drawing_them(tmp_path):
    root = write_dataset(tmp_path / "seed 0", per_class=60, size=32, processes=1)
    clean = clean_images(root)
    assert set(clean) <= set(root.rglob("*.png"))
    assert 0.45 < len(clean) / (5 * 60) < 0.65  # CLEAN_FRACTION is 0.55
    assert {path.parent.name for path in clean} == set(SHAPES)
    # another seed draws other images, so other ones are clean
    other = write_dataset(tmp_path / "seed 1", per_class=60, size=32, seed=1, processes=1)
    assert {p.relative_to(other) for p in clean_images(other, seed=1)} != {
        p.relative_to(root) for p in clean
    }


def test_the_curriculum_starts_with_its_images_then_shuffles_everything():
    # 5 is not among the indices trained on, so it never comes out
    sampler = CurriculumSampler(list(range(10, 110)), first=[12, 50, 51, 99, 5])
    torch.manual_seed(0)
    first_epoch, second_epoch = list(sampler), list(sampler)
    assert sorted(first_epoch) == sorted(second_epoch) == list(range(10, 110))
    assert set(first_epoch[:4]) == {12, 50, 51, 99}
    assert set(second_epoch[:4]) != {12, 50, 51, 99}
    rest = first_epoch[4:]
    assert rest != sorted(rest)  # shuffled, not in file order


def test_finetune_learns_and_stores_labels(tmp_path, checkpoint):
    data = write_dataset(tmp_path / "data", per_class=8, size=32)
    config = FinetuneConfig(
        data=data, epochs=20, learning_rate=3e-2, batch_size=16, freeze_backbone=True,
        image_size=32, start_weights="file", start_weights_file=checkpoint, max_steps=12,
    )  # fmt: skip
    model, card, result = finetune(config)
    assert card.labels == sorted(SHAPES)
    assert card.weights_source == "finetune"
    assert card.source_file_sha256 == sha256_of(checkpoint.read_bytes())
    assert card.preprocessing.crop_size == 32
    assert 0 <= card.validation_accuracy <= 1
    assert len(result.losses) == 12
    assert np.mean(result.losses[-4:]) < np.mean(result.losses[:4])
    assert model.fc.out_features == len(SHAPES)


def test_whitening_makes_the_first_convolution_pass_on_uncorrelated_unit_signals():
    torch.manual_seed(0)
    # smooth noise, unlike photos of shapes only in that it is easy to make: neighbouring pixels
    # move together, so raw patches are strongly correlated
    images = nn.functional.avg_pool2d(torch.randn(64, 3, 44, 44), 5, stride=1) * 3 + 0.5
    convolution = build_model(5).conv1
    whiten_convolution(convolution, images)
    # without padding: the patches it was shown
    outputs = nn.functional.conv2d(images, convolution.weight, stride=convolution.stride)
    covariance = torch.cov(outputs.transpose(0, 1).flatten(1))
    assert torch.allclose(covariance[:32, :32], torch.eye(32), atol=0.05)
    # the other half are the same filters negated, so that a ReLU passes on both signs
    assert torch.equal(convolution.weight[32:], -convolution.weight[:32])


def test_training_from_scratch_keeps_the_whitened_first_convolution(tmp_path):
    data = write_dataset(tmp_path / "data", per_class=8, size=32)
    model, _, result = finetune(
        FinetuneConfig(
            data=data, start_weights="none", freeze_backbone=False, image_size=32,
            batch_size=8, learning_rate=1e-2, max_steps=3, validation_fraction=0.25,
        )
    )  # fmt: skip
    assert len(result.losses) == 3
    # every other layer has moved; a trained stem would no longer be pairs of opposite filters
    assert torch.equal(model.conv1.weight[32:], -model.conv1.weight[:32])
    assert not model.conv1.weight.requires_grad and model.layer1[0].conv1.weight.requires_grad


def test_with_the_first_blocks_only_the_resnet50_computes_what_the_shallow_network_learned():
    torch.manual_seed(0)
    model = build_model(5).train()
    blocks = sum(len(stage) for stage in stages(model))
    images, targets = torch.randn(8, 3, 32, 32), torch.arange(8) % 5
    with first_blocks_only(model, 1) as shallow:
        layers = stages(shallow)
        assert all(isinstance(stage[1], nn.Identity) for stage in layers)
        optimizer = training_optimizer(shallow, 1e-2)
        trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for _ in range(3):
            train_step(shallow, optimizer, images, targets)
        with torch.inference_mode():
            expected = shallow.eval()(images)
    assert sum(len(stage) for stage in layers) == blocks  # every block back
    assert not any(isinstance(block, nn.Identity) for stage in layers for block in stage)
    # the blocks that waited neither trained nor add anything: the same function
    waited = [p for stage in layers for block in list(stage)[1:] for p in block.parameters()]
    assert waited and not {id(p) for p in waited} & trained
    assert all(p.requires_grad for p in waited)
    with torch.inference_mode():
        torch.testing.assert_close(model.eval()(images), expected)
    assert all(torch.all(stage[1].bn3.weight == 0) for stage in layers)


def test_strided_convolutions_as_matmuls_compute_and_train_what_the_convolutions_would():
    torch.manual_seed(0)
    model = build_model(5).train().to(memory_format=torch.channels_last)
    twin = build_model(5).train().to(memory_format=torch.channels_last)
    twin.load_state_dict(model.state_dict())
    images, targets = torch.randn(4, 3, 48, 48), torch.arange(4) % 5
    keys = list(model.state_dict())
    with strided_convolutions_as_matmuls(model) as rewritten:
        swapped = [m for m in rewritten.modules() if isinstance(m, ConvolutionAsMatmul)]
        assert len(swapped) == 4  # three shortcuts' projections and the last stage's 3x3
        losses = [nn.functional.cross_entropy(net(images), targets) for net in (rewritten, twin)]
        for loss in losses:
            loss.backward()
    torch.testing.assert_close(losses[0], losses[1])
    for (name, mine), theirs in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert list(model.state_dict()) == keys  # the convolutions are back
    assert isinstance(model.layer4[0].downsample[0], nn.Conv2d)
    assert isinstance(model.layer4[0].conv2, nn.Conv2d)


def test_a_convolution_as_a_matmul_is_the_convolution_at_any_stride_and_padding():
    torch.manual_seed(0)
    images = torch.randn(2, 6, 7, 5)
    for kernel, stride, padding in [(1, 2, 0), (3, 2, 1), (3, 1, 1), (2, 3, 0)]:
        convolution = nn.Conv2d(6, 4, kernel, stride, padding, bias=False)
        torch.testing.assert_close(ConvolutionAsMatmul(convolution)(images), convolution(images))
    with pytest.raises(ValueError, match="plain"):
        ConvolutionAsMatmul(nn.Conv2d(6, 4, 3, bias=True))


def test_each_image_comes_back_in_one_of_its_eight_flips_and_turns():
    torch.manual_seed(0)
    images = torch.rand(64, 3, 6, 6)
    turned = flipped_and_turned(images.clone())
    variants = [
        lambda image, k=k, flip=flip: torch.rot90(image.flip(-1) if flip else image, k, (-2, -1))
        for k in range(4)
        for flip in (False, True)
    ]
    seen = set()
    for image, result in zip(images, turned):
        [which] = [i for i, variant in enumerate(variants) if torch.equal(variant(image), result)]
        seen.add(which)
    assert seen == set(range(8))  # all eight, at random


def test_a_schedule_planned_again_in_its_warm_up_goes_on_as_if_planned_so_from_the_start():
    def learning_rates(optimizer, schedule, steps, replan=None):
        seen = []
        for step in range(1, steps + 1):
            seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["betas"][0]))
            optimizer.step()
            if replan and step == replan[0]:
                schedule = one_cycle(optimizer, 3e-3, replan[1], 50, done=step)
            elif step < steps:
                schedule.step()
        return seen

    def fresh():
        return torch.optim.AdamW([nn.Parameter(torch.zeros(2))], lr=3e-3)

    first = fresh()
    replanned = learning_rates(first, one_cycle(first, 3e-3, 1000, 50), 1300, (30, 1300))
    second = fresh()
    planned = learning_rates(second, one_cycle(second, 3e-3, 1300, 50), 1300)
    assert replanned == planned
    # and it is torch's own one-cycle schedule, momentum cycled too
    third = fresh()
    reference = torch.optim.lr_scheduler.OneCycleLR(third, 3e-3, 1300, pct_start=50 / 1300)
    assert learning_rates(third, reference, 1300) == planned


def test_a_budget_buys_the_steps_that_fit_in_it():
    seconds = seconds_per_step(num_classes=5, image_size=32, batch_size=8, blocks_per_stage=1)
    assert 0 < seconds < 30
    assert steps_within(10, 0.4) == 25 and steps_within(0.1, 0.4, at_least=10) == 10
    # 64 images a step, each image seen twice, and 5% held out: 33.7 images drawn a step
    config = DemoConfig(validation_fraction=0.05, epochs=2)
    assert config.images_per_step(64) == pytest.approx(64 / 2 / 0.95)


def test_pretrained_blocks_are_not_identities_so_all_of_them_train(tmp_path, checkpoint):
    data = write_dataset(tmp_path / "data", per_class=4, size=32)
    config = FinetuneConfig(
        data=data, image_size=32, start_weights="file", start_weights_file=checkpoint,
        blocks_per_stage=1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="from scratch"):
        finetune(config)


def test_finetune_needs_two_classes(tmp_path):
    (tmp_path / "only").mkdir()
    render("circle", "filled", 32, seed=0).save(tmp_path / "only" / "a.png")
    with pytest.raises(ValueError, match="two class"):
        finetune(FinetuneConfig(data=tmp_path, start_weights="none", image_size=32))


def test_imagenet_from_a_weights_file(checkpoint, bentoml_home):
    assert main(["imagenet", "--weights-file", str(checkpoint)]) == 0
    stored = bentoml.models.get("resnet50:latest")
    model, card = load_model(stored.path, stored.info.metadata)
    weights = ResNet50_Weights.IMAGENET1K_V2
    assert card.weights_source == "file"
    assert card.labels == list(weights.meta["categories"])
    assert (card.preprocessing.resize_size, card.preprocessing.crop_size) == (232, 224)
    assert card.source_file_sha256 == sha256_of(checkpoint.read_bytes())
    reference = build_model(1000)
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    reference.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    probe = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(model(probe), reference.eval()(probe), rtol=0, atol=0)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No cached download to fall back on, and no way out, even where there is internet."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")


def test_imagenet_without_weights_says_what_to_do(offline, capsys):
    assert main(["imagenet"]) == 2
    stderr = capsys.readouterr().err
    assert "--weights-file" in stderr and "python -m train demo" in stderr
    assert "Traceback" not in stderr


def test_a_bad_weights_file_is_a_message(offline, tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(["imagenet", "--weights-file", str(bad)]) == 2
    stderr = capsys.readouterr().err
    assert "not a readable PyTorch checkpoint" in stderr and "Traceback" not in stderr
    assert main(["imagenet", "--weights-file", str(tmp_path / "missing.pth")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_command_line_defaults_are_the_configs():
    parser = build_parser()
    for command, config in (("finetune", FinetuneConfig), ("demo", DemoConfig)):
        options = vars(parser.parse_args([command, "--data", "photos"]))
        # an option its config lacks would be dropped without a word
        assert set(options) - {"command", "name"} <= set(config.model_fields), command
        shared = set(options) & set(config.model_fields) - {"data"}
        assert len(shared) >= 9, shared
        for name in shared:
            field = config.model_fields[name]
            # a default the config works out (the demo's budget, by the CPU) is left to it
            default = None if field.default_factory else field.default
            assert options[name] == default, (command, name)
    assert DemoConfig().time_budget_s == DEFAULT_BUDGET_S[training_precision()] > 0


def test_finetune_and_demo_commands(tmp_path, bentoml_home):
    data = write_dataset(tmp_path / "photos", per_class=4, size=32)
    quick = ["--image-size", "32", "--max-steps", "2", "--seed", "1"]
    assert main(["finetune", "--data", str(data), "--start-weights", "none", *quick]) == 0
    card = bentoml.models.get("resnet50:latest").info.metadata
    assert card["weights_source"] == "finetune" and card["labels"] == sorted(SHAPES)

    assert main(["demo", "--per-class", "6", "--field-per-class", "2", *quick]) == 0
    card = bentoml.models.get("resnet50:latest").info.metadata
    assert card["weights_source"] == "demo" and card["labels"] == sorted(SHAPES)
    assert 0 <= card["training"]["field_shapes_accuracy"] <= 1
    assert card["training"]["field_shapes"] == {"per_class": 2, "size": 64, "seed": 1}
    assert 0 < card["training"]["clean_shapes_first"] < 5 * 6
    training = card["training"]
    # --max-steps 2: 28 images to train on (2 held out) make one batch a pass, two passes
    assert training["steps"] == 2 and training["plan"]["steps"] == 2
    assert training["plan"]["image_size"] == 32 and training["plan"]["render_size"] == 33
    assert training["blocks_per_stage"] == 1 and "seconds_per_step" not in training
    assert training["cpu"]["kind"] in ("amx", "avx512-bf16", "avx512", "avx2", "default")
    assert training["precision"] == ("bf16" if training["cpu"]["bf16"] else "fp32")

    # a budget instead: as many steps as real ones measured here fit in it, passes and all
    budget = ["--time-budget", "6", "--image-size", "32", "--render-size", "34", "--seed", "1"]
    demo = ["demo", "--field-per-class", "2", *budget]
    assert main([*demo, "--per-class", "6", "--min-images-seen", "0"]) == 0
    training = bentoml.models.get("resnet50:latest").info.metadata["training"]
    assert training["time_budget_s"] == 6 and training["seconds_per_step"] > 0
    assert training["steps"] > 2 and training["training_seconds"] > 0  # more than two passes


def test_a_machine_slower_than_the_budget_still_trains_the_demo_its_least_steps(
    tmp_path, bentoml_home, capsys
):
    """A budget that buys nothing (half a second) still trains 1,280 images: 40 steps of 32,
    past the budget, and says so."""
    demo = ["demo", "--time-budget", "0.5", "--min-images-seen", "1280", "--field-per-class", "2"]
    assert main([*demo, "--image-size", "32", "--render-size", "34", "--seed", "1"]) == 0
    training = bentoml.models.get("resnet50:latest").info.metadata["training"]
    assert training["plan"]["steps"] == 40 and training["steps"] == 40, training
    assert training["min_images_seen"] == 1280 and training["min_steps"] == 40
    assert "slower than planned for" in capsys.readouterr().out


def test_a_budget_is_planned_again_every_hundred_steps_until_its_last_tenth():
    assert _next_replan(30, 1000) == 30 + REPLAN_EVERY
    assert _next_replan(830, 1000) == 0  # 930 is in the last tenth: the decay is left alone
    assert _next_replan(30, 100) == 0
