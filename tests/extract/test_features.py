import copy

import pytest
import torch

from dgss.backbone.loading import PixelBackbone
from dgss.extract.blocks import tap_blocks
from dgss.extract.features import ddim_invert, extract_features, inverse_scheduler

BLOCKS = ["mid_block", "up_blocks.2"]
STEPS = [3, 25, 500]


@pytest.fixture(scope="module")
def extract_images() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _count_passes(backbone):
    calls = []
    handle = backbone.network.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls, handle


def test_anchored_equals_independent_calls(extract_backbone, extract_images):
    calls, handle = _count_passes(extract_backbone)
    try:
        features = extract_features(extract_backbone, extract_images, blocks=BLOCKS, timesteps=STEPS)
    finally:
        handle.remove()
    assert features.passes == len(STEPS) and features.calls == len(calls) == 1  # 32 px: all timesteps in one call
    assert features.maps["mid_block"].shape == (1, 3, 32, 8, 8)
    assert features.maps["up_blocks.2"].shape == (1, 3, 16, 32, 32)
    for index, step in enumerate(STEPS):
        with torch.no_grad(), tap_blocks(extract_backbone.network, ["up_blocks.2"]) as outputs:
            extract_backbone.network(extract_images, step)
        assert torch.allclose(features.maps["up_blocks.2"][:, index], outputs["up_blocks.2"][0], atol=1e-5)


@pytest.mark.parametrize("mode", ["anchored", "ddim", "noised"])
def test_same_image_twice_identical(extract_backbone, extract_images, mode):
    first = extract_features(extract_backbone, extract_images, blocks=BLOCKS, timesteps=STEPS, mode=mode, seed=3)
    second = extract_features(extract_backbone, extract_images, blocks=BLOCKS, timesteps=STEPS, mode=mode, seed=3)
    for name in BLOCKS:
        assert torch.equal(first.maps[name], second.maps[name])


def test_ddim_matches_diffusers_inversion_loop(extract_backbone, extract_images):
    scheduler = inverse_scheduler(extract_backbone)
    scheduler.set_timesteps(5)
    sample = extract_images.clone()
    with torch.no_grad():
        for step in scheduler.timesteps:
            output = extract_backbone.network(sample, step).sample
            sample = scheduler.step(output, step, sample).prev_sample
        ours = ddim_invert(extract_backbone, extract_images, scheduler.timesteps.tolist())
    assert scheduler.timesteps.tolist() == [0, 200, 400, 600, 800]
    assert torch.allclose(ours, sample, atol=1e-5)


def test_ddim_features_make_one_pass_per_timestep(extract_backbone, extract_images):
    calls, handle = _count_passes(extract_backbone)
    try:
        ddim = extract_features(extract_backbone, extract_images, blocks=BLOCKS, timesteps=STEPS, mode="ddim")
    finally:
        handle.remove()
    anchored = extract_features(extract_backbone, extract_images, blocks=BLOCKS, timesteps=STEPS)
    assert ddim.passes == ddim.calls == len(calls) == len(STEPS)
    # the first inversion pass is f(x0, t_1): the anchored features (batched, so to float rounding); later ones differ
    assert torch.allclose(ddim.maps["mid_block"][:, 0], anchored.maps["mid_block"][:, 0], atol=1e-5)
    assert not torch.allclose(ddim.maps["mid_block"][:, 2], anchored.maps["mid_block"][:, 2])


def test_ddim_with_zero_noise_model_only_rescales(extract_backbone, extract_images):
    network = copy.deepcopy(extract_backbone.network)
    torch.nn.init.zeros_(network.conv_out.weight)
    torch.nn.init.zeros_(network.conv_out.bias)
    zero = PixelBackbone(name="zero", digest="0", network=network, scheduler_config=extract_backbone.scheduler_config)
    with torch.no_grad():
        latent = ddim_invert(zero, extract_images, STEPS)
    alpha = zero.alphas_cumprod()[STEPS[-1]].float()
    assert torch.allclose(latent, alpha.sqrt() * extract_images, atol=1e-6)


def test_ddim_with_x0_prediction(extract_x0_backbone, extract_images):
    with torch.no_grad():
        first = ddim_invert(extract_x0_backbone, extract_images, [10])
        deeper = ddim_invert(extract_x0_backbone, extract_images, [10, 300])
    assert torch.allclose(first, extract_images, atol=1e-6)  # a clean start: the first step keeps the sample
    assert torch.isfinite(deeper).all() and not torch.allclose(deeper, extract_images)


def test_noised_seeded_and_averaged_over_draws(extract_backbone, extract_images):
    def run(seed, draws=1):
        return extract_features(
            extract_backbone, extract_images, blocks=["mid_block"], timesteps=STEPS, mode="noised",
            draws=draws, seed=seed,
        )

    assert torch.equal(run(0).maps["mid_block"], run(0).maps["mid_block"])
    assert not torch.allclose(run(0).maps["mid_block"], run(1).maps["mid_block"])
    pair = run(0, draws=2)
    assert pair.passes == 2 * len(STEPS)
    assert pair.maps["mid_block"].shape == (1, 3, 32, 8, 8)


UNEVEN = [1, 10, 50, 400]


def _linear_alphas_cumprod() -> torch.Tensor:
    """a_t of the fixture's schedule (DDIMScheduler defaults: linear betas 1e-4 .. 0.02 over T = 1000), from scratch."""
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), dim=0)


def _reference_inversion(network, x0, steps, alphas, *, call_at_previous=False):
    """DDIM inversion (eq. 12, sigma = 0) written out: the model is called at the target step t on the sample of the
    previous level s (a_s = 1 at the clean start), eps_hat = its output, x0_hat = (x_s - sqrt(1 - a_s) eps_hat) /
    sqrt(a_s), x_t = sqrt(a_t) x0_hat + sqrt(1 - a_t) eps_hat."""
    sample, alpha_prev, previous = x0.double(), torch.tensor(1.0, dtype=torch.float64), 0
    for step in steps:
        eps = network(sample.float(), previous if call_at_previous else step).sample.double()
        clean = (sample - (1 - alpha_prev).sqrt() * eps) / alpha_prev.sqrt()
        sample = alphas[step].sqrt() * clean + (1 - alphas[step]).sqrt() * eps
        alpha_prev, previous = alphas[step], step
    return sample.float()


def test_ddim_on_an_uneven_schedule_matches_the_step_formula_written_out(extract_backbone, extract_images):
    alphas = _linear_alphas_cumprod()
    torch.testing.assert_close(extract_backbone.alphas_cumprod(), alphas, atol=1e-6, rtol=0)
    with torch.no_grad():
        ours = ddim_invert(extract_backbone, extract_images, UNEVEN)
        expected = _reference_inversion(extract_backbone.network, extract_images, UNEVEN, alphas)
        # what an inversion that reads the schedule one step off, or calls the model at the previous level, gives
        shifted = _reference_inversion(extract_backbone.network, extract_images, UNEVEN, alphas.roll(1))
        late = _reference_inversion(extract_backbone.network, extract_images, UNEVEN, alphas, call_at_previous=True)
        evenly = _reference_inversion(extract_backbone.network, extract_images, [1, 134, 267, 400], alphas)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=0)
    for wrong in (shifted, late, evenly):  # the tolerance tells each of these mistakes apart
        assert (wrong - expected).abs().max() > 50 * 2e-5


def test_ddim_on_an_uneven_schedule_matches_diffusers_stepped_one_gap_at_a_time(extract_backbone, extract_images):
    """diffusers' inverse step reads the previous level at t - T // num_inference_steps: setting the step count per
    step to T // gap makes it step clean -> 1 -> 10 -> 50 -> 250 -> 750 (gaps 9, 40, 200, 500 after the first)."""
    steps = [1, 10, 50, 250, 750]
    scheduler = inverse_scheduler(extract_backbone)
    sample, previous = extract_images.clone(), None
    with torch.no_grad():
        for step in steps:
            # the first step: a stride past 0 makes diffusers start from initial_alpha_cumprod (the clean image)
            scheduler.num_inference_steps = 1 if previous is None else 1000 // (step - previous)
            assert previous is None or 1000 // scheduler.num_inference_steps == step - previous
            output = extract_backbone.network(sample, step).sample
            sample = scheduler.step(output, step, sample).prev_sample
            previous = step
        ours = ddim_invert(extract_backbone, extract_images, steps)
    torch.testing.assert_close(ours, sample, atol=2e-5, rtol=0)
