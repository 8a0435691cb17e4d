"""Train, evaluate and checkpoint the digit recognizer: `python train.py --steps N`.

Rerunning the same command resumes from the latest checkpoint in --checkpoint-dir.
"""

from __future__ import annotations

import argparse
import os
import sys


def _positive_int(text: str) -> int:
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}') from None
  if value <= 0:
    raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
  return value


def _positive_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected a positive number, got {text!r}') from None
  if not (value > 0 and value != float('inf')):
    raise argparse.ArgumentTypeError(f'expected a positive number, got {text!r}')
  return value


def _int(text: str) -> int:
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None


def build_parser() -> argparse.ArgumentParser:
  from digitrec_jax.config import TrainConfig
  d = TrainConfig()
  p = argparse.ArgumentParser(prog='train.py', description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument('--steps', type=_positive_int, default=d.steps, help='train until this step')
  p.add_argument('--batch-size', type=_positive_int, default=d.batch_size,
                 help='global batch, split over all devices')
  p.add_argument('--learning-rate', type=_positive_float, default=d.learning_rate, help='peak learning rate')
  p.add_argument('--seed', type=_int, default=d.seed)
  p.add_argument('--eval-every', type=_positive_int, default=d.eval_every,
                 help='evaluate on the test set and checkpoint every N steps (and at the end)')
  p.add_argument('--checkpoint-dir', default=os.path.join('checkpoints', 'run'),
                 help='run directory: checkpoints, summary.json, metrics.jsonl')
  p.add_argument('--data-dir', default=None,
                 help='folder with the four MNIST .gz files (default: $DIGITREC_DATA_DIR, else download)')
  p.add_argument('--no-resume', action='store_true', help='refuse to continue an existing run')
  return p


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  # Multi-host: the standard JAX coordinator variables mean this process is one of many.
  if os.environ.get('JAX_COORDINATOR_ADDRESS'):
    import jax
    jax.distributed.initialize()
  from digitrec_jax import CheckpointError, DataError, TrainConfig, train_and_evaluate
  from digitrec_jax.training import TrainingInterrupted
  try:
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                         seed=args.seed, eval_every=args.eval_every, data_dir=args.data_dir)
    summary = train_and_evaluate(config, args.checkpoint_dir, resume=not args.no_resume)
  except TrainingInterrupted as e:
    print(str(e), file=sys.stderr)
    return 128 + e.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them.
  except (CheckpointError, DataError, ValueError, FloatingPointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'step {summary["step"]}: test accuracy {summary["test_accuracy"]:.2%} '
        f'(loss {summary["test_loss"]:.4f}) | {summary["train_seconds"]:.1f} s, '
        f'{summary["images_per_second"] or 0:,.0f} images/s on {summary["device_count"]}x '
        f'{summary["device_kind"]} | {summary["checkpoint_dir"]}/summary.json')
  return 0


if __name__ == '__main__':
  sys.exit(main())
