"""Inference latency (preprocess_drawing + predict_proba, one image) and GUI start-up time.

  python -m benchmarks.gui_latency [--repeats N] [--startups N]

Writes the 'gui' entry of benchmarks/results.json and regenerates the README table from it.
The start-up measurement needs a display (run under xvfb-run on a headless machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'benchmarks' / 'results.json'
README = ROOT / 'README.md'
BEGIN, END = '<!-- gui-benchmark:begin -->', '<!-- gui-benchmark:end -->'


def _hardware() -> str:
  import jax
  cpu = platform.processor() or platform.machine()
  try:
    for line in Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        cpu = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  return f'{cpu}, {os.cpu_count()} cores; jax {jax.__version__} on {jax.devices()[0].platform}'


def measure_latency(repeats: int) -> dict[str, float]:
  """p50/p99 milliseconds of preprocess_drawing + predict_proba on one drawn 280x280 image."""
  import gui
  from digitrec_jax import load_predictor, preprocess_drawing
  predictor = load_predictor()
  rng = np.random.default_rng(0)
  times = []
  for _ in range(repeats):
    points = [tuple(p) for p in rng.uniform(0.2, 0.8, (6, 2))]
    image = gui.render_strokes([points])
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


def render_table(entry: dict) -> str:
  lines = [BEGIN, '| measure | result | goal |', '| --- | --- | --- |',
           f'| `preprocess_drawing` + `predict_proba`, one image, p50 | {entry["latency_p50_ms"]:.2f} ms | ≤ 2 ms |',
           f'| same, p99 | {entry["latency_p99_ms"]:.2f} ms | |']
  if entry.get('startup_median_s') is not None:
    lines.append(f'| `python gui.py` to window ready, median of {entry["startup_runs"]} '
                 f'| {entry["startup_median_s"]:.2f} s | ≤ 3 s |')
  lines += ['', f'Hardware: {entry["hardware"]}. Command: `{entry["command"]}`.', END]
  return '\n'.join(lines)


def update_readme(entry: dict) -> None:
  text = README.read_text()
  start, end = text.index(BEGIN), text.index(END) + len(END)
  README.write_text(text[:start] + render_table(entry) + text[end:])


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m benchmarks.gui_latency')
  parser.add_argument('--repeats', type=int, default=1000)
  parser.add_argument('--startups', type=int, default=5)
  parser.add_argument('--no-write', action='store_true', help='print only (the CI smoke run)')
  args = parser.parse_args(argv)
  sys.path.insert(0, str(ROOT))
  entry = {**measure_latency(args.repeats), **(measure_startup(args.startups) or {}),
           'hardware': _hardware(), 'command': 'xvfb-run python -m benchmarks.gui_latency'}
  print(json.dumps(entry, indent=2))
  if not args.no_write:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results['gui'] = entry
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + '\n')
    update_readme(entry)
  return 0


if __name__ == '__main__':
  sys.exit(main())
