"""What the tests share, by concern: paths and the Snakemake runner (`snakemake`), config.yaml
merged and validated (`config`), tiny models and images (`tiny`), stage options taken from
config.yaml (`stage_args`), a job killed mid-run (`killed`), and the suite's scheduling on xdist
workers (`scheduling`). tests/conftest.py holds only the pytest fixtures and hooks built from
them."""
