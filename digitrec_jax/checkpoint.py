"""Orbax storage of a run directory; it knows pytrees and JSON, not training or command-line flags.

A run directory holds:
  state/<step>/  items 'state' (the full train state, for resume) and 'config'
  best/<step>/   items 'variables' (for inference), 'config', 'metrics' and 'calibration' (temperature and
                 "not a digit" threshold, fitted on the validation split)
  summary.json, metrics.jsonl  written by training
A shipped, params-only checkpoint is a run directory with `best/` alone.

After each save, `<step>/files.json` records the size and sha256 of every file of the step. A restore
checks them, and the array shapes in Orbax's metadata against the target, before Orbax reads any
array: a damaged, edited or mismatched checkpoint is refused up front, so no read is left in flight.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

STATE, BEST = 'state', 'best'
# Room for metadata, JSON items and filesystem overhead beyond the arrays' bytes.
_SAVE_SLACK = 1 << 20
_ITEMS = {STATE: ('state', 'config'), BEST: ('variables', 'config', 'metrics', 'calibration')}
_JSON_ITEMS = ('config', 'metrics', 'calibration')
FILES_JSON = 'files.json'
# JSON written by this package is a few KiB; the cap keeps a hand-edited file from filling memory.
MAX_JSON_BYTES = 1 << 20


class CheckpointError(RuntimeError):
  """A checkpoint or run directory is missing, damaged or does not fit; the message names it."""


def read_json_file(path: Path) -> Any:
  """JSON from a regular file of at most MAX_JSON_BYTES (never a FIFO, device or huge file)."""
  try:
    info = path.stat()
  except OSError as e:
    raise CheckpointError(f'cannot read {path} ({e.strerror})') from e
  if not stat.S_ISREG(info.st_mode):
    raise CheckpointError(f'{path} is not a regular file')
  if info.st_size > MAX_JSON_BYTES:
    raise CheckpointError(f'{path} is {info.st_size:,} bytes, over the {MAX_JSON_BYTES:,}-byte limit for JSON')
  try:
    return json.loads(path.read_bytes())
  except (OSError, ValueError) as e:
    raise CheckpointError(f'{path} is not valid JSON ({e})') from e


def write_file_atomically(path: Path, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it: `path` is the old or the new file."""
  tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: Any) -> None:
  """Writes JSON atomically (see `write_file_atomically`)."""
  write_file_atomically(path, (json.dumps(payload, indent=2, sort_keys=True) + '\n').encode())


def _sha256(path: Path) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def _step_files(step_dir: Path) -> dict[str, Path]:
  """Every file under `step_dir` by relative path; anything but plain files and folders is refused."""
  files = {}
  for dirpath, dirnames, filenames in os.walk(step_dir):
    for name in dirnames + filenames:
      path = Path(dirpath) / name
      mode = path.lstat().st_mode
      if stat.S_ISDIR(mode):
        continue
      if not stat.S_ISREG(mode):
        raise CheckpointError(f'{path} is not a regular file (a link, FIFO or device) inside checkpoint {step_dir}')
      files[str(path.relative_to(step_dir))] = path
  return files


def _record_files(step_dir: Path) -> None:
  files = _step_files(step_dir)
  files.pop(FILES_JSON, None)
  write_json(step_dir / FILES_JSON, {rel: [p.stat().st_size, _sha256(p)] for rel, p in sorted(files.items())})


def _verify_files(step_dir: Path) -> None:
  """Checks every file `files.json` lists: present, same size, same sha256; none unlisted but itself."""
  present = _step_files(step_dir)
  if FILES_JSON not in present:
    # A save that died between Orbax's commit and files.json: complete, but unverified.
    return
  recorded = read_json_file(step_dir / FILES_JSON)
  if not isinstance(recorded, dict):
    raise CheckpointError(f'{step_dir / FILES_JSON} is not a JSON object')
  for rel, entry in recorded.items():
    path = step_dir / rel
    if rel not in present:
      raise CheckpointError(f'checkpoint {step_dir} is damaged: {rel} is missing')
    size, digest = entry
    actual = path.stat().st_size
    if actual != size:
      raise CheckpointError(f'checkpoint {step_dir} is damaged: {rel} has {actual:,} bytes, expected {size:,}')
    if _sha256(path) != digest:
      raise CheckpointError(f'checkpoint {step_dir} was changed after it was saved: {rel} differs')
  for rel in present:
    if rel.split(os.sep)[0] in _JSON_ITEMS and present[rel].stat().st_size > MAX_JSON_BYTES:
      raise CheckpointError(f'{present[rel]} is over the {MAX_JSON_BYTES:,}-byte limit for JSON')


def _key_name(key: Any) -> str:
  for attr in ('key', 'name', 'idx'):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _check_shapes(item_dir: Path, abstract: Any) -> None:
  """Compares the arrays that Orbax's metadata lists (paths and global shapes) with `abstract`."""
  if not (item_dir / '_METADATA').is_file():
    raise CheckpointError(f'checkpoint {item_dir.parent} is damaged: {item_dir.name}/_METADATA is missing')
  try:
    metadata = ocp.StandardCheckpointHandler().metadata(item_dir)
  except (OSError, ValueError, KeyError) as e:
    raise CheckpointError(f'cannot read the metadata of checkpoint {item_dir.parent} ({type(e).__name__})') from e
  named = lambda tree: {tuple(_key_name(k) for k in path): tuple(leaf.shape)
                        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0] if hasattr(leaf, 'shape')}
  stored, wanted = named(metadata), named(abstract)
  for path in sorted(set(stored) | set(wanted)):
    name = '/'.join(path)
    if path not in stored:
      raise CheckpointError(f'checkpoint {item_dir.parent} holds another model: it has no array {name}')
    if path not in wanted:
      raise CheckpointError(f'checkpoint {item_dir.parent} holds another model: it has an extra array {name}')
    if stored[path] != wanted[path]:
      raise CheckpointError(f'checkpoint {item_dir.parent} holds another model: {name} has shape '
                            f'{list(stored[path])}, expected {list(wanted[path])}')


class Checkpoints:
  """The Orbax manager of one kind of checkpoint ('state' or 'best') in a run directory."""

  def __init__(self, run_dir: Path, kind: str, *, keep: int | None = None, writable: bool = False):
    self.directory = run_dir / kind
    self.items = _ITEMS[kind]
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        # A reader opens with create=False rather than read_only=True, which only adds warnings.
        create=writable,
        # A save killed midway leaves only a `<step>.orbax-checkpoint-tmp-*` folder, which Orbax never
        # reads as a checkpoint; the writer deletes such leftovers when it starts.
        cleanup_tmp_directories=writable,
        # Saves are synchronous: the next dispatch donates the state's buffers, so an async save could
        # otherwise read memory that XLA is already reusing.
        enable_async_checkpointing=False,
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=self.items)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def step_dir(self, step: int) -> Path:
    return self.directory / str(step)

  def save(self, step: int, trees: dict[str, Any], jsons: dict[str, Any]) -> None:
    """Saves the pytrees `trees` and the JSON objects `jsons` as the items of `step`."""
    args = {**{k: ocp.args.StandardSave(v) for k, v in trees.items()},
            **{k: ocp.args.JsonSave(v) for k, v in jsons.items()}}
    # A full disk is found before Orbax starts writing (its writer threads would log a traceback each).
    needed = sum(x.nbytes for x in jax.tree.leaves(trees) if hasattr(x, 'nbytes')) + _SAVE_SLACK
    free = shutil.disk_usage(self.directory).free
    if free < needed:
      raise CheckpointError(f'no room for checkpoint {self.step_dir(step)}: it needs about {needed / 2**20:.1f} MB '
                            f'and {free / 2**20:.1f} MB are free; free some space')
    try:
      self._manager.save(step, args=ocp.args.Composite(**args))
      self._manager.wait_until_finished()
    except (OSError, ValueError) as e:  # Tensorstore reports write errors (ENOSPC, EIO, ...) as ValueError.
      reason = str(e).split('Failed to write')[-1].strip(' :') if 'Failed to write' in str(e) else type(e).__name__
      raise CheckpointError(f'cannot write checkpoint {self.step_dir(step)} ({reason[:200]})') from e
    if jax.process_index() == 0:
      _record_files(self.step_dir(step))

  def read_json(self, step: int, item: str) -> dict[str, Any]:
    """A JSON item of `step`, after checking the step's files."""
    _verify_files(self.step_dir(step))
    try:
      value = getattr(self._manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()})), item)
    except (OSError, ValueError, KeyError) as e:
      raise CheckpointError(f'cannot read {item} of checkpoint {self.step_dir(step)} ({type(e).__name__})') from e
    if not isinstance(value, dict):
      raise CheckpointError(f'the {item} of checkpoint {self.step_dir(step)} is not a JSON object')
    return dict(value)

  def restore(self, step: int, item: str, abstract: Any) -> Any:
    """The pytree item of `step`, restored into `abstract` (shapes, dtypes and shardings)."""
    _verify_files(self.step_dir(step))
    _check_shapes(self.step_dir(step) / item, abstract)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(abstract)}))
    except (OSError, ValueError) as e:
      raise CheckpointError(f'cannot restore checkpoint {self.step_dir(step)} ({type(e).__name__}: {e})') from e
    return getattr(restored, item)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def is_params_only(directory: Path) -> bool:
  """A shipped or exported checkpoint: saved steps in `best/`, and no `state/`.

  A folder that merely holds a run named `best` (runs/best beside runs/fast), or an empty `best/`, is
  none. A `best/` that cannot be listed is taken as none: nothing is written into it either way.
  """
  best = directory / BEST
  if (directory / STATE).exists() or not best.is_dir():
    return False
  try:
    return any(step.name.isdigit() and (step / '_CHECKPOINT_METADATA').is_file() for step in best.iterdir())
  except OSError:
    return False


def _inside_a_checkpoint(workdir: Path) -> str | None:
  """What `workdir` is, or lies in, that training must not write into: a params-only checkpoint or a step."""
  folders = (workdir, *workdir.parents)
  for folder in folders:
    if is_params_only(folder):
      return f'the params-only (shipped or exported) checkpoint {folder}'
  for folder in folders:
    if (folder / '_CHECKPOINT_METADATA').is_file():
      return f'the checkpoint step {folder}'
  return None


def _lock(workdir: Path):
  """An exclusive flock on workdir/.lock, which the kernel drops when the process dies.

  The file is opened without following links and only if it is a regular file, so a planted link
  never leads the pid line into another file.
  """
  import fcntl
  path = workdir / '.lock'
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
  except OSError as e:
    if e.errno == errno.ELOOP:
      raise CheckpointError(f'{path} is a symbolic link; remove it') from e
    raise CheckpointError(f'cannot open {path} ({e.strerror})') from e
  if not stat.S_ISREG(os.fstat(fd).st_mode):
    os.close(fd)
    raise CheckpointError(f'{path} is not a regular file; remove it')
  f = os.fdopen(fd, 'r+')
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError as e:
    holder = f.read(100).strip() or 'another process'
    f.close()
    raise CheckpointError(f'{workdir} is in use by another training ({holder})') from e
  f.truncate(0)
  f.write(f'pid {os.getpid()}\n')
  f.flush()
  return f


class RunCheckpoints:
  """A run directory opened for training: its lock and its 'state' and 'best' checkpoints."""

  def __init__(self, workdir: str | Path, keep: int = 3):
    self.workdir = Path(workdir).expanduser().absolute()
    try:
      is_file = self.workdir.exists() and not self.workdir.is_dir()
    except OSError as e:  # A name too long, a folder that cannot be searched, ...
      raise CheckpointError(f'cannot use run dir {self.workdir} ({e.strerror})') from e
    if is_file:
      raise CheckpointError(f'run dir {self.workdir} is a file')
    inside = _inside_a_checkpoint(self.workdir)
    if inside is not None:
      raise CheckpointError(f'{self.workdir} is inside {inside}')
    try:
      self.workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise CheckpointError(f'cannot create run dir {self.workdir} ({e.strerror})') from e
    self._lock = _lock(self.workdir) if jax.process_index() == 0 else None
    self.state = Checkpoints(self.workdir, STATE, keep=keep, writable=True)
    self.best = Checkpoints(self.workdir, BEST, keep=1, writable=True)

  def close(self) -> None:
    self.state.close()
    self.best.close()
    if self._lock is not None:
      self._lock.close()  # Releases the flock.


def open_for_inference(root: str | Path) -> tuple[Checkpoints, int]:
  """The checkpoints of `root` to load for inference and their latest step: `best/`, else `state/`."""
  root = Path(root).expanduser().absolute()
  if not root.exists():
    raise CheckpointError(f'checkpoint dir {root} does not exist')
  if not root.is_dir():
    raise CheckpointError(f'checkpoint dir {root} is a file, not a folder')
  for kind in (BEST, STATE):
    if (root / kind).is_dir():
      checkpoints = Checkpoints(root, kind)
      step = checkpoints.latest_step()
      if step is not None:
        return checkpoints, step
      checkpoints.close()
  raise CheckpointError(f'no checkpoint in {root}')
