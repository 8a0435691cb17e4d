"""Accuracy against time for a candidate recipe on real MNIST:

  python -m benchmarks.recipes PRESET [FIELD=VALUE ...]

e.g. `python -m benchmarks.recipes fast model.pool=max steps=1100 seed=3` (fields as in
`benchmarks.throughput`). Evaluates once, at the end, on the CPU devices the recipe's `cpu_devices`
asks for, as `train.py` runs it. Prints test accuracy, train_seconds and the seconds since the process
started. Reads $DIGITREC_DATA_DIR.
"""

import dataclasses
import json
import sys
import tempfile
import time

_T0 = time.perf_counter()

from benchmarks.throughput import config_from_args  # noqa: E402
from digitrec_jax import train_and_evaluate  # noqa: E402
from digitrec_jax.train import split_cpu  # noqa: E402


def main(argv: list[str]) -> int:
  config = config_from_args(argv)
  config = dataclasses.replace(config, eval_every=config.steps)
  split_cpu(config)
  with tempfile.TemporaryDirectory() as run_dir:
    summary = train_and_evaluate(config, run_dir, progress=False)
  print(json.dumps({'recipe': ' '.join(argv), 'test_accuracy': summary['test_accuracy'],
                    'train_seconds': summary['train_seconds'],
                    'process_seconds': round(time.perf_counter() - _T0, 1)}))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
