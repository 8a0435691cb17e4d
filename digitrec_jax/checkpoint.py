"""Orbax checkpoints of a training run.

A run directory holds:
  state/<step>/  the latest `keep` full train states (params, optimizer state, step, RNG) for resume
  best/<step>/   the params with the best test accuracy so far, for inference
  summary.json, metrics.jsonl  written by training
A shipped, params-only checkpoint is a run directory with `best/` alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from digitrec_jax.config import TrainConfig

_HOW_TO_GET_ONE = 'train one with `python train.py --checkpoint-dir DIR`'


class CheckpointError(RuntimeError):
  """A checkpoint is missing, unreadable or does not fit; the message says how to fix it."""


def _manager(directory: Path, item_names: tuple[str, ...], keep: int, read_only: bool) -> ocp.CheckpointManager:
  # A reader opens with create=False rather than read_only=True, which only adds warnings.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=None if read_only else keep,
      create=not read_only,
      # A save killed midway leaves only a `<step>.orbax-checkpoint-tmp-*` folder, which Orbax never
      # reads as a checkpoint; the writer deletes such leftovers when it starts.
      cleanup_tmp_directories=not read_only,
      # Saves are synchronous: the next dispatch donates the state's buffers, so an
      # async save could otherwise read memory that XLA is already reusing.
      enable_async_checkpointing=False,
  )
  return ocp.CheckpointManager(directory, options=options, item_names=item_names)


@contextlib.contextmanager
def _restoring(where: Path):
  """Runs an Orbax restore of `where` with stderr silenced; if it fails, silences its abandoned reads.

  When a restore fails midway (truncated array files), Orbax closes its event loop while tensorstore
  still has reads in flight. As each finishes it reports "Event loop is closed" as an unraisable
  exception, and asyncio logs "Task exception was never retrieved" when the task is collected, which
  can be at interpreter exit. From then on both are dropped (the log lines only when they name this
  checkpoint), so the user sees just our one-line error.
  """
  sys.stderr.flush()
  saved_fd, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  saved_hook = sys.unraisablehook
  failed = False
  try:
    os.dup2(devnull, 2)
    sys.unraisablehook = lambda unraisable: None
    with contextlib.redirect_stderr(io.StringIO()):
      try:
        yield
      except Exception:
        failed = True
        raise
  finally:
    # One assignment, so no late read slips through between restoring the hook and wrapping it.
    sys.unraisablehook = _ABANDONED.add(where, saved_hook) if failed else saved_hook
    os.dup2(saved_fd, 2)
    os.close(saved_fd)
    os.close(devnull)


class _AbandonedReads(logging.Filter):
  """Drops the late reports of reads that failed restores abandoned (see `_restoring`)."""

  def __init__(self):
    super().__init__()
    self.dirs: set[str] = set()

  def add(self, where: Path, unraisablehook: Callable[[Any], None]) -> Callable[[Any], None]:
    """Starts dropping the late reports for `where`; returns `unraisablehook` wrapped to do so."""
    self.dirs.update({str(where), str(where.resolve())})
    asyncio_logger = logging.getLogger('asyncio')
    if self not in asyncio_logger.filters:
      asyncio_logger.addFilter(self)
    if getattr(unraisablehook, '__self__', None) is not self:
      self._next_hook = unraisablehook
    return self._unraisable

  def _mentions(self, text: str) -> bool:
    return any(d in text for d in self.dirs)

  def _unraisable(self, unraisable) -> None:
    exc = unraisable.exc_value
    late_read = ((isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed')
                 or self._mentions(f'{exc!r} {exc.__cause__!r}'))
    if not late_read:
      self._next_hook(unraisable)

  def filter(self, record: logging.LogRecord) -> bool:
    return not self._mentions(record.getMessage())


_ABANDONED = _AbandonedReads()


def _lock(workdir: Path):
  """An exclusive flock on workdir/.lock. The kernel drops it when the process dies, so a crashed
  run never leaves the directory locked."""
  import fcntl
  f = open(workdir / '.lock', 'a+')
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.seek(0)
    holder = f.read().strip() or 'another process'
    f.close()
    raise CheckpointError(f'{workdir} is in use by another training ({holder}); wait for it to finish '
                          'or pass another --checkpoint-dir') from None
  f.seek(0)
  f.truncate()
  f.write(f'pid {os.getpid()}\n')
  f.flush()
  return f


def _with_sharding(abstract: Any, sharding: jax.sharding.Sharding) -> Any:
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)


class RunCheckpoints:
  """The two checkpoint managers of one run directory."""

  def __init__(self, workdir: str | Path, keep: int = 3):
    self.workdir = Path(workdir).expanduser().absolute()
    if self.workdir.exists() and not self.workdir.is_dir():
      raise CheckpointError(f'checkpoint dir {self.workdir} is a file; pass a folder to --checkpoint-dir')
    if (self.workdir / 'best').is_dir() and not (self.workdir / 'state').exists():
      raise CheckpointError(f'{self.workdir} holds a params-only (shipped or exported) checkpoint; '
                            'train into another --checkpoint-dir')
    self.workdir.mkdir(parents=True, exist_ok=True)
    self._lock = _lock(self.workdir)
    self._state = _manager(self.workdir / 'state', ('state', 'config'), keep, read_only=False)
    self._best = _manager(self.workdir / 'best', ('params', 'config', 'metrics'), 1, read_only=False)

  def latest_step(self) -> int | None:
    return self._state.latest_step()

  def saved_config(self, step: int) -> TrainConfig:
    return _read_config(self._state, step, self.workdir / 'state')

  def restore_state(self, step: int, abstract_state: Any, sharding: jax.sharding.Sharding) -> Any:
    """The train state at `step`, placed with `sharding`."""
    target = _with_sharding(abstract_state, sharding)
    try:
      with _restoring(self.workdir / 'state' / str(step)):
        restored = self._state.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
    except Exception as e:
      raise CheckpointError(f'cannot restore {self.workdir / "state" / str(step)} ({type(e).__name__}); '
                            'delete that step folder to resume from an earlier one, or pass --no-resume '
                            'with a new --checkpoint-dir') from None
    return restored.state

  def save_state(self, step: int, state: Any, config: TrainConfig) -> None:
    self._state.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config.to_dict())))

  def save_best(self, step: int, params: Any, config: TrainConfig, metrics: dict[str, float]) -> None:
    self._best.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params), config=ocp.args.JsonSave(config.to_dict()),
        metrics=ocp.args.JsonSave(metrics)))

  def best_metrics(self) -> dict[str, float] | None:
    step = self._best.latest_step()
    if step is None:
      return None
    return dict(self._best.restore(step, args=ocp.args.Composite(metrics=ocp.args.JsonRestore())).metrics)

  def close(self) -> None:
    self._state.wait_until_finished()
    self._best.wait_until_finished()
    self._state.close()
    self._best.close()
    self._lock.close()  # Releases the flock.


def _read_config(manager: ocp.CheckpointManager, step: int, where: Path) -> TrainConfig:
  try:
    raw = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config
    return TrainConfig.from_dict(dict(raw))
  except Exception as e:
    raise CheckpointError(f'cannot read the config of {where / str(step)} ({type(e).__name__}); '
                          f'the checkpoint is corrupt: {_HOW_TO_GET_ONE}') from None


def restore_params(checkpoint_dir: str | Path) -> tuple[Any, TrainConfig]:
  """Params (on the default device) and config of a run dir, preferring its best checkpoint."""
  params, config, _ = restore_for_inference(checkpoint_dir)
  return params, config


def restore_for_inference(checkpoint_dir: str | Path) -> tuple[Any, TrainConfig, dict[str, Any]]:
  """`restore_params` plus facts for display: the checkpoint path, its step and test accuracy."""
  from digitrec_jax import model as model_lib
  from digitrec_jax import training

  root = Path(checkpoint_dir).expanduser().absolute()
  if not root.exists():
    raise CheckpointError(f'checkpoint dir {root} does not exist; {_HOW_TO_GET_ONE}')
  if not root.is_dir():
    raise CheckpointError(f'checkpoint dir {root} is a file, not a folder; {_HOW_TO_GET_ONE}')
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  for sub, items in (('best', ('params', 'config', 'metrics')), ('state', ('state', 'config'))):
    if not (root / sub).is_dir():
      continue
    manager = _manager(root / sub, items, keep=1, read_only=True)
    step = manager.latest_step()
    if step is None:
      manager.close()
      continue
    config = _read_config(manager, step, root / sub)
    model = model_lib.CNN.from_config(config.model)
    try:
      with _restoring(root / sub / str(step)):
        if sub == 'best':
          abstract = jax.eval_shape(lambda: model_lib.init_params(model, jax.random.key(0)))
          restored = manager.restore(step, args=ocp.args.Composite(
              params=ocp.args.StandardRestore(_with_sharding(abstract, device)), metrics=ocp.args.JsonRestore()))
          params, accuracy = restored.params, dict(restored.metrics).get('test_accuracy')
        else:
          abstract = jax.eval_shape(lambda: training.create_train_state(config))
          args = ocp.args.Composite(state=ocp.args.StandardRestore(_with_sharding(abstract, device)))
          params = training.eval_params(manager.restore(step, args=args).state)
          accuracy = _summary_accuracy(root, step)
    except Exception as e:
      raise CheckpointError(f'cannot restore {root / sub / str(step)} ({type(e).__name__}); the checkpoint '
                            f'is corrupt or from another model: {_HOW_TO_GET_ONE}') from None
    finally:
      manager.close()
    return params, config, {'path': str(root / sub / str(step)), 'step': step, 'test_accuracy': accuracy}
  raise CheckpointError(f'no checkpoint in {root}; {_HOW_TO_GET_ONE}')


def _summary_accuracy(root: Path, step: int) -> float | None:
  """The test accuracy summary.json records for `step`, if it does."""
  try:
    summary = json.loads((root / 'summary.json').read_text())
  except (OSError, ValueError):
    return None
  return summary.get('test_accuracy') if summary.get('step') == step else None


def write_json(path: Path, payload: dict[str, Any]) -> None:
  """Writes JSON atomically: a crash leaves the old file or the new one, never half of one."""
  tmp = path.with_suffix(path.suffix + '.tmp')
  tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + '\n')
  tmp.replace(path)
