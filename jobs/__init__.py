"""The pipeline's steps, CLI and runtime.

OpenMP threads (XGBoost, torch, scikit-learn) sleep while they wait instead of spinning,
unless ``OMP_WAIT_POLICY`` is set: set here, before any of them is loaded, because OpenMP
reads it once. On a machine shared with other work a spinning thread takes the CPU its
partner needs: 30 rounds of XGBoost's quantile booster on ``small`` took 41 s (wall and CPU)
with spinning threads and 12 s with sleeping ones on the 2 busy CPUs of the dev machine
(2026-11-24).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
