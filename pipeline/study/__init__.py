"""The study: its cells from the config (design), the summary tables, the training curves
(curves) and the figures of the report. Torch-free apart from figures, so the Snakefile can import
design on every parse."""
