"""Accuracy against time for a candidate recipe on real MNIST:

  python -m benchmarks.recipes [--curve] PRESET [FIELD=VALUE ...]

e.g. `python -m benchmarks.recipes fast model.pool=max steps=1100 seed=3` (fields as in
`benchmarks.throughput`). Evaluates once, at the end, on the CPU devices the recipe's `cpu_devices`
asks for, as `train.py` runs it. Prints test accuracy, train_seconds and the seconds since the process
started. Reads $DIGITREC_DATA_DIR.

--curve keeps the recipe's own evaluations (`eval_every`) and also prints the checkpoint that validation
chose (best/) and every evaluation as [step, seconds, validation accuracy, test accuracy].
"""

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

_T0 = time.perf_counter()

from benchmarks.throughput import config_from_args  # noqa: E402
from digitrec_jax import train_and_evaluate  # noqa: E402
from digitrec_jax.evaluate import read_metrics  # noqa: E402
from digitrec_jax.train import split_cpu  # noqa: E402


def main(argv: list[str]) -> int:
  curve = argv[:1] == ['--curve']
  argv = argv[1:] if curve else argv
  config = config_from_args(argv)
  if not curve:
    config = dataclasses.replace(config, eval_every=config.steps)
  split_cpu(config)
  with tempfile.TemporaryDirectory() as run_dir:
    summary = train_and_evaluate(config, run_dir, progress=False)
    _, evals = read_metrics(Path(run_dir) / 'metrics.jsonl')
  result = {'recipe': ' '.join(argv), 'test_accuracy': summary['test_accuracy'],
            'train_seconds': summary['train_seconds'], 'process_seconds': round(time.perf_counter() - _T0, 1)}
  if curve:
    result.update(best_step=summary['best_step'], best_val_accuracy=summary['best_val_accuracy'],
                  best_test_accuracy=summary['best_test_accuracy'],
                  evals=[[r['step'], r['seconds'], r['val_accuracy'], r['test_accuracy']]
                         for r in evals])
  print(json.dumps(result))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
