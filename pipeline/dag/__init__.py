"""What the Snakefile imports to wire the DAG, torch-free: config checks that run before any job,
the workflow's files and per-job choices (paths, and search for the `auto` search's rounds), and
the command-line options of every rule, split into tracked (rerun on change) and untracked."""
