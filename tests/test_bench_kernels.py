"""bench/kernels.py: the learning-outcome tests (marker `kernels`) rerun under each CPU kernel
selection and thread count (CI's step after the suite)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from support.snakemake import REPO

spec = importlib.util.spec_from_file_location("kernels", REPO / "bench" / "kernels.py")
kernels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kernels)


def test_settings_cover_every_kernel_choice_and_two_thread_counts():
    s = kernels.settings("AVX512")
    assert s["aten-avx512"] == {"ATEN_CPU_CAPABILITY": "avx512"}
    assert {"ATEN_CPU_CAPABILITY": "default"} in s.values()
    assert {"ONEDNN_MAX_CPU_ISA": "AVX2"} in s.values()
    assert {"MKL_ENABLE_INSTRUCTIONS": "AVX2"} in s.values()
    assert {v.get("KERNELS_THREADS") for v in s.values()} == {None, "1", "2"}
    assert "aten-avx512" not in kernels.settings("AVX2")  # ATen refuses what the CPU lacks


def test_spread_gathers_each_value_over_the_settings():
    lines = [{"test": "t", "setting": "a", "gain": 4.0}, {"test": "t", "setting": "b", "gain": 1.5}]
    table = kernels.spread(lines)
    assert table["t"]["gain"] == {"by_setting": {"a": 4.0, "b": 1.5}, "min": 1.5, "max": 4.0}
    assert "1.5" in kernels.format_spread(table)


@pytest.mark.slow
@pytest.mark.bench  # a pytest process under bench/kernels.py (~20 s): CI runs it after the suite
def test_a_setting_reruns_the_marked_tests_and_records_their_values(tmp_path):
    out = tmp_path / "k.json"
    assert kernels.main(["--only", "threads2", "-k", "lars", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["setting"] == "threads2" and run["rc"] == 0 and "1 passed" in run["pytest"]
    (test,) = result["spread"]
    assert test.endswith("test_lars_trains_a_small_regression")
    assert result["spread"][test]["ratio"]["max"] < 0.5
