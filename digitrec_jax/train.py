"""Train, evaluate and checkpoint the digit recognizer: `digitrec-train --steps N` (or `python train.py`).

Rerunning the same command resumes from the latest checkpoint in --checkpoint-dir.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
  from digitrec_jax.config import TrainConfig

# MNIST's training set; a larger batch can never be filled.
_MAX_BATCH = 60_000


def _int_in(low: int, high: int | None = None):
  """An argparse type: an integer in [low, high]."""
  what = 'a positive integer' if (low, high) == (1, None) else f'an integer from {low:,} to {high:,}'

  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}') from None
    if value < low or (high is not None and value > high):
      raise argparse.ArgumentTypeError(f'expected {what}, got {text!r}')
    return value
  return parse


def _positive_float(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f'expected a positive number, got {text!r}') from None
  if not (value > 0 and value != float('inf')):
    raise argparse.ArgumentTypeError(f'expected a positive number, got {text!r}')
  return value


def build_parser() -> argparse.ArgumentParser:
  from digitrec_jax.config import PRESETS
  p = argparse.ArgumentParser(prog='digitrec-train', description=__doc__.splitlines()[0])
  p.add_argument('--preset', choices=sorted(PRESETS), default='default',
                 help='named recipe (digitrec_jax/config.py); the flags below override its values')
  p.add_argument('--steps', type=_int_in(1), help='train until this step')
  p.add_argument('--batch-size', type=_int_in(1, _MAX_BATCH), help='global batch, split over all devices')
  p.add_argument('--learning-rate', type=_positive_float, help='peak learning rate')
  p.add_argument('--seed', type=_int_in(0, 2**32 - 1))
  p.add_argument('--eval-every', type=_int_in(1),
                 help='evaluate on the validation and test sets and checkpoint every N steps (and at the end)')
  p.add_argument('--checkpoint-dir', help='run directory: checkpoints, summary.json, metrics.jsonl '
                 '(default: checkpoints/PRESET)')
  p.add_argument('--data-dir', default=None,
                 help='folder with the four MNIST .gz files (default: $DIGITREC_DATA_DIR, else download)')
  p.add_argument('--no-resume', action='store_true', help='refuse to continue an existing run')
  return p


def _init_distributed() -> None:
  """Joins a multi-process run described by JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.

  jax reads only the address from the environment, so the count and the id are passed here. CPU devices
  of different processes all-reduce through gloo (this setting leaves GPU and TPU collectives alone).
  """
  import jax
  try:
    count, index = int(os.environ['JAX_NUM_PROCESSES']), int(os.environ['JAX_PROCESS_ID'])
  except (KeyError, ValueError) as e:
    raise SystemExit('error: JAX_COORDINATOR_ADDRESS is set, so JAX_NUM_PROCESSES and JAX_PROCESS_ID must be '
                     'integers too; set them, or unset JAX_COORDINATOR_ADDRESS') from e
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(os.environ['JAX_COORDINATOR_ADDRESS'], num_processes=count, process_id=index)


def _default_compilation_cache() -> None:
  """Keeps compiled programs in the user's cache folder, so a second run skips compiling (about 1.5 s of
  the fast preset's 12 s here); JAX_COMPILATION_CACHE_DIR chooses another folder and
  JAX_ENABLE_COMPILATION_CACHE=false turns it off. An entry that does not load is compiled again."""
  import jax
  if not jax.config.jax_compilation_cache_dir:
    cache_home = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    jax.config.update('jax_compilation_cache_dir', os.path.join(cache_home, 'digitrec_jax', 'jax'))
  if 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS' not in os.environ:
    # JAX's default (1 s) would skip the init and evaluation programs (0.3 to 0.7 s each).
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)


def split_cpu(config: TrainConfig) -> None:
  """Splits the CPU into `config.cpu_devices` host devices: at most one per core, and only a count that
  divides the batch. JAX_NUM_CPU_DEVICES or XLA_FLAGS' --xla_force_host_platform_device_count, if set,
  choose instead. A process's start-up setting: call it before jax's first operation. Runs on a GPU or
  TPU are untouched (they never use the CPU's devices)."""
  import jax
  if 'JAX_NUM_CPU_DEVICES' in os.environ or 'xla_force_host_platform_device_count' in os.environ.get('XLA_FLAGS', ''):
    return
  count = min(config.cpu_devices, os.cpu_count() or 1)
  if count > 1 and config.batch_size % count == 0:
    jax.config.update('jax_num_cpu_devices', count)


def main(argv: list[str] | None = None, *, fresh_process: bool = False) -> int:
  """Trains as the command line says; returns the exit code.

  `fresh_process`: nothing in this process has used jax yet (the console entry point), so the CPU can
  still be split into the recipe's `cpu_devices`. Called from a process that has, the run uses the
  devices the process has.
  """
  args = build_parser().parse_args(argv)
  from digitrec_jax.config import PRESETS, TrainConfig
  flags = {'steps': args.steps, 'batch_size': args.batch_size, 'learning_rate': args.learning_rate,
           'seed': args.seed, 'eval_every': args.eval_every}
  try:
    config = TrainConfig.from_dict({**PRESETS[args.preset].to_dict(), **{k: v for k, v in flags.items() if v is not None}})
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  if fresh_process:
    split_cpu(config)
  if os.environ.get('JAX_COORDINATOR_ADDRESS'):
    _init_distributed()
  _default_compilation_cache()
  from digitrec_jax.checkpoint import CheckpointError
  from digitrec_jax.data import DataError
  from digitrec_jax.training import RunDirError, TrainingInterrupted, train_and_evaluate
  checkpoint_dir = args.checkpoint_dir or os.path.join('checkpoints', args.preset)
  try:
    summary = train_and_evaluate(config, checkpoint_dir, data_dir=args.data_dir, resume=not args.no_resume)
  except TrainingInterrupted as e:
    print(str(e), file=sys.stderr)
    return 128 + e.signum  # 130 for SIGINT, 143 for SIGTERM, as shells report them.
  except CheckpointError as e:
    print(f'error: {e}; pass another --checkpoint-dir', file=sys.stderr)
    return 1
  except (RunDirError, DataError, ValueError, FloatingPointError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'step {summary["step"]}: test accuracy {summary["test_accuracy"]:.2%} '
        f'(loss {summary["test_loss"]:.4f}) | {summary["train_seconds"]:.1f} s, '
        f'{summary["images_per_second"] or 0:,.0f} images/s on {summary["device_count"]}x '
        f'{summary["device_kind"]} | {summary["checkpoint_dir"]}/summary.json')
  return 0


def run() -> None:
  """Console-script entry point."""
  try:
    code = main(fresh_process=True)
  except KeyboardInterrupt:
    # Ctrl-C before training installs its own handler (during imports or data loading): nothing to save.
    print('interrupted before training started; nothing was written', file=sys.stderr)
    sys.exit(130)
  # The interpreter's last garbage collection walks every object that jax, flax and orbax created; frozen
  # objects are skipped, and the process exits about 0.5 s sooner (benchmarks/README.md).
  gc.freeze()
  sys.exit(code)


if __name__ == '__main__':
  run()
