"""`snakemake --lint` finds nothing in the workflow, planned with the default and with the
CIFAR-10 preset (a finding kept on purpose is named, with its reason, beside its code)."""

import pytest
from support.snakemake import REPO, run_snakemake


@pytest.mark.slow
@pytest.mark.parametrize("configs", [[], ["configs/cifar10.yaml"]], ids=["default", "cifar10"])
def test_lint_finds_nothing(configs, tmp_path):
    args = ["--configfile", *(str(REPO / c) for c in configs)] if configs else []
    r = run_snakemake("--lint", *args, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "Lints for" not in r.stdout + r.stderr
