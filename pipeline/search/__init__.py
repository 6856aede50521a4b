"""The `auto` strategy: a successive-halving search over inflation settings (torch-free parts:
the candidates, the round schedule, the selection; `score` needs torch)."""
