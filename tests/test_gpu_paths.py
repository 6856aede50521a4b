"""The GPU code paths run on CPU at tiny size: torch.compile (Inductor with the system compiler),
channels_last, bf16 autocast pretraining with checkpoint/resume, and the device memory plan."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from support.killed import pretrain_killed_after

from support.stage_args import PRETRAIN_ARGS, SAMPLE_ARGS
from pipeline.core import io
from pipeline.pretraining import memory
from pipeline import pretrain as pretrain_stage, sample
from pipeline.pretraining.augment import view_params
from pipeline.generation.unet import save_generator
from pipeline.pretraining.distributed import DistContext
from pipeline.pretraining.encoders import Encoder
from pipeline.data.dataset import load_packed, pack
from pipeline.pretraining.methods import build_method
from pipeline.pretraining.loop import PretrainConfig, estimate_run_memory, pretrain

CPU = DistContext(0, 1, torch.device("cpu"))


@pytest.fixture
def inductor():
    """Inductor on CPU, cold, at the least CPU it costs: one intra-op thread (so kernels are
    generated without OpenMP regions, and none waits on a descheduled thread on a busy machine)
    and C++ compiled in this process (a worker pool would start more Pythons). With the small
    models below, the two tests went from 102 s + 28 s to 55 s + 13 s on 2 busy cores (cold
    cache); g++ on the generated kernels is most of what is left."""
    threads = torch.get_num_threads()
    torch._dynamo.reset()
    torch.set_num_threads(1)
    with torch._inductor.config.patch(compile_threads=1):
        yield
    torch._dynamo.reset()
    torch.set_num_threads(threads)


def tiny_cfg(**kw):
    base = dict(widths=[8, 16], blocks=[1, 1], method="simclr", steps=4, batch_size=8,
                optimizer="sgd", lr=0.05, hparams={"proj_hidden": 16, "proj_dim": 8},
                dup=2, seed=3, log_every=2, warmup_steps=10, precision="fp32")
    return PretrainConfig(**{**base, **kw})


def data(n=24, seed=0, size=8):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- sampling ---------------------------------------------------------------------------------------

def _shard(tmp_path, gen, name, *flags):
    out = tmp_path / f"{name}.json"
    sample.main(["--model", str(gen), "--out", str(out), "--start", "0", *SAMPLE_ARGS, "--count", "6",
                 "--sampler", "edm", "--steps", "3", "--batch-size", "6", "--device", "cpu",
                 *flags])
    return load_packed(out)[0].astype(int)


@pytest.mark.compile
def test_sampling_with_compile_and_channels_last_gives_the_same_images(tmp_path, tiny_scheduler,
                                                                       inductor):
    # the smallest UNet2DModel with the real block types (ResnetBlock2D down/up, the attention
    # mid block): compile time grows with the graph, and one level is the least that has them
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, block_out_channels=(8,), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D",),
                       up_block_types=("UpBlock2D",)).eval()
    save_generator(tmp_path / "gen", unet, tiny_scheduler)
    eager = _shard(tmp_path, tmp_path / "gen", "eager")
    fast = _shard(tmp_path, tmp_path / "gen", "fast", "--compile", "--channels-last")
    # fp32 everywhere: Inductor's fused kernels and the NHWC layout only reorder float sums
    # (relative error ~1e-6), so a pixel can move by one uint8 level only when its value sits
    # within ~1e-4 of a rounding boundary: at most 1 level, on at most 1 % of the pixels.
    diff = np.abs(fast - eager)
    assert diff.max() <= 1 and (diff > 0).mean() <= 0.01


def test_sampling_bf16_channels_last_matches_bf16(tmp_path, tiny_unet, tiny_scheduler):
    save_generator(tmp_path / "gen", tiny_unet, tiny_scheduler)
    plain = _shard(tmp_path, tmp_path / "gen", "plain", "--precision", "bf16")
    nhwc = _shard(tmp_path, tmp_path / "gen", "nhwc", "--precision", "bf16", "--channels-last")
    # bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4 %): a different summation order in
    # the NHWC kernels changes some UNet outputs by one bf16 ulp, i.e. up to ~1 uint8 level per
    # evaluation over 5 evaluations; the images' content is the same.
    diff = np.abs(nhwc - plain)
    assert diff.mean() < 1.0 and diff.max() <= 16


# -- pretraining: bf16, channels_last, compile ---------------------------------------------------

def test_bf16_channels_last_step_and_resume_equal_an_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    cfg = dict(precision="bf16", channels_last=True, checkpoint_every=2)
    aug_params = view_params("standard")
    _, fp32 = pretrain(tiny_cfg(steps=1), aug_params, data(), data(10, 1), CPU)
    straight_enc, straight = pretrain(tiny_cfg(**cfg), aug_params, data(), data(10, 1), CPU)
    # the same first step in bf16 autocast: the loss agrees to bf16 precision (3 digits)
    assert straight[0]["loss"] == pytest.approx(fp32[0]["loss"], rel=2e-2)
    assert straight[0]["loss"] != fp32[0]["loss"]  # autocast really ran

    ckpt = tmp_path / "ckpt.pt"

    pretrain_killed_after(2, tiny_cfg(**cfg), aug_params, data(), data(10, 1), CPU, checkpoint=ckpt)
    enc, resumed = pretrain(tiny_cfg(**cfg), aug_params, data(), data(10, 1), CPU, checkpoint=ckpt)
    assert [h["step"] for h in resumed] == [1, 2, 3, 4]
    np.testing.assert_allclose([h["loss"] for h in resumed], [h["loss"] for h in straight],
                               rtol=1e-5)
    for a, b in zip(enc.state_dict().values(), straight_enc.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.compile
def test_compiled_channels_last_training_equals_eager(inductor):
    aug_params = view_params("standard")
    one_block = dict(widths=[8], blocks=[1], steps=2)  # the least encoder: compile time ∝ graph
    eager_enc, eager = pretrain(tiny_cfg(**one_block), aug_params, data(), None, CPU)
    fast_enc, fast = pretrain(tiny_cfg(**one_block, compile=True, channels_last=True), aug_params,
                              data(), None, CPU)
    # fp32: compiled kernels reorder float sums (~1e-6 relative); two SGD steps keep that small
    np.testing.assert_allclose([h["loss"] for h in fast], [h["loss"] for h in eager], rtol=1e-4)
    assert fast_enc.state_dict().keys() == eager_enc.state_dict().keys()  # checkpoints unchanged
    for a, b in zip(fast_enc.state_dict().values(), eager_enc.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


# -- the memory plan -------------------------------------------------------------------------------

def test_dataset_bytes_of_the_preset_are_exact():
    # 50k real CIFAR images + 1M generated, 32×32×3 uint8: about 3.2 GB
    assert memory.dataset_bytes(1_050_000, (32, 32, 3)) == 3_225_600_000


def test_activation_count_matches_a_real_forward():
    """The fake-tensor count equals the bytes autograd really saves in a real CPU forward."""
    torch.manual_seed(0)
    method = build_method("simclr", Encoder([8, 16], [1, 1], [0.5] * 3, [0.25] * 3),
                          proj_hidden=16, proj_dim=8)
    per_sample = memory.activation_bytes_per_sample(method, 16)
    real = {}

    def pack_hook(t):
        real[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    sizes = []
    for batch in (3, 6):
        real.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
            method(torch.rand(batch, 3, 16, 16), torch.rand(batch, 3, 16, 16))
        sizes.append(sum(real.values()))
    # equal up to a few small tensors (the loss's per-row buffers) that the two ways of keying
    # a storage (its address here, its object under fake tensors) count differently
    assert per_sample == pytest.approx((sizes[1] - sizes[0]) / 3, rel=0.01)
    # at least the two views' first feature maps (8 channels, fp32) are kept per sample
    assert per_sample >= 2 * 8 * 16 * 16 * 4
    bf16 = memory.activation_bytes_per_sample(method, 16, torch.bfloat16)
    assert 0.4 * per_sample < bf16 < 0.8 * per_sample  # bf16 halves the conv inputs kept


def test_memory_estimate_of_the_preset():
    """ResNet-18 SimCLR at batch 512 in bf16 with 1.05M images resident: about 7 GB, which fits
    an 80 GB H100 and not a 4 GB card."""
    cfg = PretrainConfig(widths=[64, 128, 256, 512], blocks=[2, 2, 2, 2], batch_size=512,
                         precision="bf16", method="simclr", steps=1000, warmup_steps=10, dup=1,
                         seed=0, log_every=50)
    method = build_method("simclr", Encoder(cfg.widths, cfg.blocks, [0.5] * 3, [0.25] * 3))
    plan = estimate_run_memory(cfg, method, 1_050_000, (32, 32, 3), world=1)
    assert plan.data == 3_225_600_000
    params = sum(p.numel() for p in method.parameters())
    buffers = sum(b.numel() * b.element_size() for b in method.buffers())
    assert plan.model == params * 4 * 3 + buffers  # fp32 weights, gradients, LARS momentum
    assert 1e9 < plan.activations < 6e9  # a few MB per sample, both views
    memory.check_fits(plan, 80 * 10**9, "cuda:0")
    with pytest.raises(memory.MemoryPlanError, match=r"needs about .* GB .* but 4\.00 GB is free"):
        memory.check_fits(plan, 4 * 10**9, "cuda:0")


def test_pretrain_refuses_a_plan_over_the_budget(tmp_path):
    cfg = tiny_cfg(steps=1)
    method = build_method("simclr", Encoder([8, 16], [1, 1], [0.5] * 3, [0.25] * 3),
                          proj_hidden=16, proj_dim=8)
    need = estimate_run_memory(cfg, method, 34, (8, 8, 3), world=1).total
    aug_params = view_params("standard")
    with pytest.raises(memory.MemoryPlanError) as e:
        pretrain(cfg, aug_params, data(), data(10, 1), CPU, memory_budget=need - 1)
    assert "\n" not in str(e.value)
    _, history = pretrain(cfg, aug_params, data(), data(10, 1), CPU, memory_budget=need)
    assert len(history) == 1

    files = []
    for k in range(2):
        io.save_images(tmp_path / f"r{k}.npz", data(8, k), np.arange(8) % 2)
        files.append(str(tmp_path / f"r{k}.npz"))
    pack(tmp_path / "real", "real", files)
    out = tmp_path / "run" / "encoder.pt"
    with pytest.raises(SystemExit, match=r"^pretrain: pretraining needs about [^\n]* 0\.00 GB "):
        pretrain_stage.main(["--real", str(tmp_path / "real"), "--out", str(out), *PRETRAIN_ARGS,
                             "--history", str(tmp_path / "run" / "h.csv"), "--strategy", "none",
                             "--steps", "1", "--widths", "8", "16", "--blocks", "1", "1",
                             "--batch-size", "8", "--method-arg", "proj_hidden=16",
                             "--method-arg", "proj_dim=8", "--device", "cpu",
                             "--memory-budget", "0.001"])
    assert not out.exists()
