"""What the Snakefile imports to wire the DAG, torch-free: config checks that run before any job,
and the command-line options of every rule, split into tracked (rerun on change) and untracked."""
