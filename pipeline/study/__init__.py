"""The study: its cells from the config (design), the summary tables, the training curves
(curves), the `auto` search's table (search) and the figures of the report. Torch-free, so the
Snakefile can import design on every parse and the report stage never loads torch."""
