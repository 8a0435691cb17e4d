"""Inference latency (preprocess_drawing + predict_proba, one image) and GUI start-up time.

Used by `python -m benchmarks.run`. The start-up measurement needs a display (xvfb-run on a
headless machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def measure_latency(repeats: int) -> dict[str, float]:
  """p50/p99 milliseconds of preprocess_drawing + predict_proba on one drawn 280x280 image."""
  from digitrec_jax import load_predictor, preprocess_drawing, render_strokes
  predictor = load_predictor()
  rng = np.random.default_rng(0)
  times = []
  for _ in range(repeats):
    points = [tuple(p) for p in rng.uniform(0.2, 0.8, (6, 2))]
    image = render_strokes([points])
    t0 = time.perf_counter()
    predictor.predict_proba(preprocess_drawing(image)[None])
    times.append((time.perf_counter() - t0) * 1e3)
  return {'latency_p50_ms': round(float(np.percentile(times, 50)), 3),
          'latency_p99_ms': round(float(np.percentile(times, 99)), 3), 'latency_repeats': repeats,
          'traces': predictor.trace_count}


def measure_startup(runs: int) -> dict[str, float] | None:
  """Seconds from `python gui.py` starting to the window ready (median of `runs`)."""
  if not os.environ.get('DISPLAY'):
    return None
  times = []
  for _ in range(runs):
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / 'gui.py'), '--exit-when-ready'], capture_output=True,
                         text=True, timeout=120)
    if out.returncode:
      raise RuntimeError(out.stderr)
    times.append(time.perf_counter() - t0)
  return {'startup_median_s': round(float(np.median(times)), 3), 'startup_max_s': round(max(times), 3),
          'startup_runs': runs}
