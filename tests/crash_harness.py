"""`python train.py` on a fake MNIST folder with a tiny model, able to SIGKILL itself mid-flight.

  python tests/crash_harness.py DATA_DIR TRAIN_ARGS...       (env CRASH_AT=KIND:N[:DELAY])

KIND is chunk (a fused training dispatch), eval (an evaluation) or save (a state checkpoint
save); the process kills itself DELAY seconds after the Nth such call starts.
"""

import functools
import os
import signal
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from helpers import TINY_MODEL, checksums_of  # noqa: E402

from digitrec_jax import checkpoint, config, data, train, training  # noqa: E402


def _kill_later(delay: float) -> None:
  threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()


def _arm(kind: str, nth: int, delay: float) -> None:
  calls = {'n': 0}

  def wrap(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      calls['n'] += 1
      if calls['n'] == nth:
        _kill_later(delay)
      return fn(*args, **kwargs)
    return wrapper

  if kind == 'chunk':
    training._ChunkPrograms.__call__ = wrap(training._ChunkPrograms.__call__)
  elif kind == 'eval':
    training.run_evaluation = wrap(training.run_evaluation)
  elif kind == 'save':
    save = checkpoint.Checkpoints.save
    wrapped = wrap(save)
    checkpoint.Checkpoints.save = lambda self, *a, **k: (
        wrapped(self, *a, **k) if self.directory.name == checkpoint.STATE else save(self, *a, **k))
  else:
    raise SystemExit(f'unknown CRASH_AT kind {kind!r}')


def main() -> int:
  data_dir, argv = sys.argv[1], sys.argv[2:]
  data.FILES = checksums_of(Path(data_dir))
  config.PRESETS['default'] = config.TrainConfig(model=TINY_MODEL, warmup_steps=2, val_size=64)
  training.train_and_evaluate = functools.partial(training.train_and_evaluate, steps_per_dispatch=2)
  if os.environ.get('CRASH_AT'):
    kind, nth, *delay = os.environ['CRASH_AT'].split(':')
    _arm(kind, int(nth), float(delay[0]) if delay else 0.0)
  return train.main(['--data-dir', data_dir, *argv])


if __name__ == '__main__':
  sys.exit(main())
