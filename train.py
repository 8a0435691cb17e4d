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
  from digitrec_jax.config import PRESETS
  p = argparse.ArgumentParser(prog='train.py', description=__doc__)
  p.add_argument('--preset', choices=sorted(PRESETS), default='default',
                 help='named recipe (digitrec_jax/config.py); the flags below override its values')
  p.add_argument('--steps', type=_positive_int, help='train until this step')
  p.add_argument('--batch-size', type=_positive_int, help='global batch, split over all devices')
  p.add_argument('--learning-rate', type=_positive_float, help='peak learning rate')
  p.add_argument('--seed', type=_int)
  p.add_argument('--eval-every', type=_positive_int,
                 help='evaluate on the test set and checkpoint every N steps (and at the end)')
  p.add_argument('--checkpoint-dir', help='run directory: checkpoints, summary.json, metrics.jsonl '
                 '(default: checkpoints/PRESET)')
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
  from digitrec_jax.config import PRESETS
  from digitrec_jax.training import TrainingInterrupted
  flags = {'steps': args.steps, 'batch_size': args.batch_size, 'learning_rate': args.learning_rate,
           'seed': args.seed, 'eval_every': args.eval_every, 'data_dir': args.data_dir}
  checkpoint_dir = args.checkpoint_dir or os.path.join('checkpoints', args.preset)
  try:
    preset = PRESETS[args.preset].to_dict()
    config = TrainConfig.from_dict({**preset, **{k: v for k, v in flags.items() if v is not None}})
    summary = train_and_evaluate(config, checkpoint_dir, resume=not args.no_resume)
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
