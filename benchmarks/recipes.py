"""Accuracy against time for a candidate recipe on real MNIST:

  python -m benchmarks.recipes CONVS DENSE BATCH STEPS LR WARMUP LABEL_SMOOTHING SEED

e.g. `python -m benchmarks.recipes 16,32 128 128 1000 0.01 100 0.1 0`. Prints test accuracy,
train_seconds and the seconds since the process started. Reads $DIGITREC_DATA_DIR.
"""

import json
import sys
import tempfile
import time

_T0 = time.perf_counter()

from digitrec_jax import ModelConfig, TrainConfig, train_and_evaluate  # noqa: E402


def main(argv: list[str]) -> int:
  convs = tuple(int(c) for c in argv[0].split(','))
  dense, batch, steps = int(argv[1]), int(argv[2]), int(argv[3])
  lr, warmup, smoothing, seed = float(argv[4]), int(argv[5]), float(argv[6]), int(argv[7])
  config = TrainConfig(steps=steps, batch_size=batch, learning_rate=lr, warmup_steps=warmup,
                       label_smoothing=smoothing, seed=seed, eval_every=steps,
                       model=ModelConfig(conv_features=convs, dense_features=dense))
  with tempfile.TemporaryDirectory() as run_dir:
    summary = train_and_evaluate(config, run_dir, progress=False)
  print(json.dumps({'recipe': argv, 'test_accuracy': summary['test_accuracy'],
                    'train_seconds': summary['train_seconds'],
                    'process_seconds': round(time.perf_counter() - _T0, 1)}))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
