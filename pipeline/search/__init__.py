"""The `auto` strategy: a successive-halving search over inflation settings. Torch-free apart from
`score`: the candidates, the round schedule, the selection and the report's summary (`summary`).
The DAG's side of it (the rounds' files and job options) is pipeline/dag/search_plan.py, wired by
workflow/rules/search.smk; its stage is pipeline/search_select.py."""
