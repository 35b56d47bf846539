"""Devices and dtypes: the CUDA path (skipped without a GPU) and half precision."""

from __future__ import annotations

import pytest
import torch

import gpt2viz

IDS = list(range(200, 230))


def test_default_device_is_cuda_when_available(small_dir) -> None:
    model = gpt2viz.load_model(small_dir)
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bfloat16_on_cpu_stays_close(small_model, small_dir) -> None:
    half = gpt2viz.load_model(small_dir, device="cpu", dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    trace = half.run_with_capture(IDS)
    assert trace.logits.dtype == torch.float32  # traces are always float32 on the CPU
    reference = small_model.run_with_capture(IDS)
    torch.testing.assert_close(trace["blocks.1.attn.hook_pattern"],
                               reference["blocks.1.attn.hook_pattern"], atol=0.05, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-3), (torch.float16, 0.05)])
def test_cuda_matches_cpu(small_model, small_dir, tok, dtype, atol) -> None:
    gpu = gpt2viz.load_model(small_dir, device="cuda", dtype=dtype)
    trace, reference = gpu.run_with_capture(IDS), small_model.run_with_capture(IDS)
    assert trace.logits.device.type == "cpu"
    torch.testing.assert_close(trace.logits, reference.logits, atol=atol * 10, rtol=0)
    torch.testing.assert_close(trace["blocks.0.attn.hook_pattern"],
                               reference["blocks.0.attn.hook_pattern"], atol=atol, rtol=0)
    if dtype == torch.float32:
        steps = gpt2viz.generate(gpu, tok, "On the GPU", max_new_tokens=10)
        cpu_steps = gpt2viz.generate(small_model, tok, "On the GPU", max_new_tokens=10)
        assert [s.token_id for s in steps] == [s.token_id for s in cpu_steps]
