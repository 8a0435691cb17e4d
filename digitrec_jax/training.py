"""Training: the state, one fused and donated jitted step, exact evaluation, and the loop."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from digitrec_jax import augment as augment_lib
from digitrec_jax import calibration
from digitrec_jax import checkpoint as ckpt_lib
from digitrec_jax import data as data_lib
from digitrec_jax import nondigits
from digitrec_jax.config import TrainConfig
from digitrec_jax.model import IMAGE_SHAPE, NUM_CLASSES, CNN, Apply, ApplyFn, Variables, init_variables, make_apply_fn

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def compiler_options(**cpu_options: Any) -> dict[str, Any] | None:
  """XLA options of the training programs: on CPU, LLVM at optimization level 1 instead of 3, plus
  `cpu_options`; None elsewhere.

  Measured here (benchmarks/README.md): the programs compile in about half the time (the fast preset's
  init 0.7 s against 1.8 s) and train as fast or faster (fast preset 12,300 against 11,100 images/s,
  best 441 against 417); level 0 halves the speed. They only make things faster, and XLA's options come
  and go between jaxlib releases (0.11 dropped `xla_cpu_use_fusion_emitters`), so an option that this
  jaxlib does not know is left out rather than failing every compile.
  """
  if jax.default_backend() != 'cpu':
    return None
  options = {'xla_backend_optimization_level': 1, **cpu_options}
  return {name: value for name, value in options.items() if _known_option(name, value)}


@functools.lru_cache(maxsize=None)
def _known_option(name: str, value: Any) -> bool:
  """Whether this jaxlib's XLA accepts compile option `name` (one trivial compile, a few ms, per option
  and process)."""
  try:
    jax.jit(lambda: 0, compiler_options={name: value}).lower().compile()
  except jax.errors.JaxRuntimeError as e:
    if 'No such compile option' not in str(e):
      raise
    return False
  return True


def _jit(cpu_options: dict[str, Any] | None = None, **jit_kwargs):
  """A decorator: `jax.jit` with `compiler_options(**cpu_options)`, built at the first call, once the
  backend is known."""
  def wrap(fn):
    jitted = None

    @functools.wraps(fn)
    def call(*args, **kwargs):
      nonlocal jitted
      if jitted is None:
        jitted = jax.jit(fn, compiler_options=compiler_options(**(cpu_options or {})), **jit_kwargs)
      return jitted(*args, **kwargs)
    return call
  return wrap


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array  # int32 scalar: number of updates applied
  params: Any  # the weights, which the optimizer updates
  batch_stats: Any  # batch-norm running statistics, set by the forward pass ({} without batch norm)
  opt_state: optax.OptState
  # Raw key data of the run's base key. All randomness is derived from (rng, step), so a
  # resumed run draws exactly the stream an uninterrupted one would have.
  rng: jax.Array
  # Exponential moving average of the variables ({'params', 'batch_stats'}) when config.ema_decay > 0.
  ema: Any = None


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """AdamW with linear warm-up and cosine decay over `config.steps`."""
  return optax.adamw(learning_rate_schedule(config), b1=config.adam_b1, weight_decay=config.weight_decay)


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
  warmup = min(config.warmup_steps, config.steps // 2)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=warmup,
      decay_steps=config.steps, end_value=config.learning_rate * 1e-2)


def create_train_state(config: TrainConfig) -> TrainState:
  """The initial state for `config.seed` (jitted: Flax's init run op by op compiles every layer's
  initializer on its own, 3.8 s for the fast preset against 1.3 s)."""
  return _jitted_initial_state(config)


def _initial_state(config: TrainConfig) -> TrainState:
  init_key, run_key = jax.random.split(jax.random.key(config.seed))
  variables = init_variables(CNN.from_config(config.model), init_key)
  return TrainState(step=jnp.zeros((), jnp.int32), params=variables['params'],
                    batch_stats=variables['batch_stats'],
                    opt_state=make_optimizer(config).init(variables['params']),
                    rng=jax.random.key_data(run_key),
                    ema=jax.tree.map(jnp.copy, variables) if config.ema_decay else None)


_jitted_initial_state = jax.jit(_initial_state, static_argnums=0)
# What the training loop starts from: the same values (checked bitwise for every preset), compiled at
# `compiler_options()` in 0.7 s instead of 1.3 s, and without XLA:CPU's fusion emitters in 0.57 instead
# of 0.88 CPU seconds (fast preset; it runs once, so their speed does not matter). Options are allowed
# only on a top-level jit, so the public function, which users may call inside `jax.eval_shape`, goes without.
_training_initial_state = _jit(cpu_options={'xla_cpu_use_fusion_emitters': False}, static_argnums=0)(_initial_state)


def eval_variables(state: TrainState) -> Variables:
  """The variables to evaluate, checkpoint as best and ship: the EMA when there is one."""
  return {'params': state.params, 'batch_stats': state.batch_stats} if state.ema is None else state.ema


def _step_key(state: TrainState) -> jax.Array:
  """This step's key: a pure function of (seed, step)."""
  # The first of two, as when the second keyed the data order (now `epoch_orders` on the host), so
  # the augmentation and dropout streams stay those of earlier runs.
  step_base, _ = jax.random.split(jax.random.wrap_key_data(state.rng))
  return jax.random.fold_in(step_base, state.step)


def augment(config: TrainConfig, key: jax.Array, images: jax.Array, labels: jax.Array) -> jax.Array:
  """The configured random changes of a batch (float in [0, 1] out), or the batch unchanged.

  With `augment_share` < 1 each image is changed with that probability and otherwise passed as it is.
  """
  if not config.augments:
    return images
  affine_key, stroke_key = jax.random.split(key)
  images = original = images.astype(jnp.float32) / (255.0 if images.dtype == jnp.uint8 else 1.0)
  if config.augment_forms:
    images = augment_lib.international_forms(jax.random.fold_in(key, 2), images, labels, config.augment_forms)
  images = augment_lib.random_affine(
      affine_key, images, rotation=config.augment_rotation, scale=config.augment_scale,
      shear=config.augment_shear, shift=config.augment_shift, aspect=config.augment_aspect,
      elastic=config.augment_elastic)
  if config.augment_stroke:
    images = augment_lib.random_stroke_width(stroke_key, images, config.augment_stroke)
  if config.augment_share < 1.0:
    keep = jax.random.uniform(jax.random.fold_in(key, 3), (images.shape[0], 1, 1, 1)) >= config.augment_share
    images = jnp.where(keep, original, images)
  if config.augment_blur:
    images = augment_lib.random_blur(jax.random.fold_in(key, 4), images, labels != nondigits.NON_DIGIT_LABEL,
                                     config.augment_blur)
  return images


def train_step(state: TrainState, batch: Batch, *, apply_fn: Apply, tx: optax.GradientTransformation,
               config: TrainConfig) -> tuple[TrainState, Metrics]:
  """One optimizer update on `batch`; returns the new state and the batch's loss and accuracy."""
  if (state.ema is not None) != (config.ema_decay > 0):
    raise ValueError('the state has EMA weights but config.ema_decay is 0, or the reverse; pass the config '
                     'the state was created with')
  step_key = _step_key(state)
  dropout_key, augment_key = jax.random.split(step_key)
  images = augment(config, augment_key, batch['image'], batch['label'])

  def loss_fn(params):
    logits, batch_stats = apply_fn.train({'params': params, 'batch_stats': state.batch_stats}, images, dropout_key)
    targets = optax.smooth_labels(jax.nn.one_hot(batch['label'], logits.shape[-1]), config.label_smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean(), (logits, batch_stats)

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema
  if ema is not None:
    # The usual warm-up of the decay, so early averages are not dominated by the random init.
    decay = jnp.minimum(config.ema_decay, (1.0 + state.step) / (10.0 + state.step))
    ema = jax.tree.map(lambda e, v: decay * e + (1.0 - decay) * v, ema,
                       {'params': params, 'batch_stats': batch_stats})
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                            ema=ema)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  return new_state, {'loss': loss, 'accuracy': accuracy}


def mix_non_digits(batch: Batch, bank: jax.Array, key: jax.Array, fraction: float,
                   bank_labels: jax.Array | None = None, offset: int = 0) -> Batch:
  """The batch with round(fraction * B) examples, ending `offset` before its end, replaced by random
  images of `bank`, labelled `bank_labels` (default NON_DIGIT_LABEL); shapes stay static."""
  b = batch['label'].shape[0]
  k = int(round(fraction * b))
  if not k:
    return batch
  idx = jax.random.randint(key, (k,), 0, bank.shape[0])
  labels = (jnp.full((k,), nondigits.NON_DIGIT_LABEL, batch['label'].dtype) if bank_labels is None
            else bank_labels[idx].astype(batch['label'].dtype))
  start = b - offset - k
  return {'image': jax.lax.dynamic_update_slice_in_dim(batch['image'], bank[idx].astype(batch['image'].dtype), start, 0),
          'label': jax.lax.dynamic_update_slice_in_dim(batch['label'], labels, start, 0)}


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch; the remainder of each epoch's shuffle is dropped."""
  return num_examples // batch_size


def epoch_orders(state: TrainState, epoch: int | jax.Array, num_examples: int) -> np.ndarray:
  """The shuffled example order of `epoch` followed by that of `epoch + 1`, keyed by (run key, epoch).

  A chunk of at most one epoch's steps always lies within these two epochs. The shuffle runs on the
  host once per epoch: a jitted 60k-element permutation costs half a second to compile and, on CPU,
  as much as a fifth of a training step to run; numpy takes about a millisecond.
  """
  words = [int(w) for w in to_host(state.rng).ravel()]
  perm = lambda e: np.random.default_rng([*words, 0xDA7A, int(e)]).permutation(num_examples)
  return np.concatenate([perm(epoch), perm(int(epoch) + 1)]).astype(np.int32)


def get_batch(train_data: Batch, orders: jax.Array, first_epoch: jax.Array, step: jax.Array,
              batch_size: int) -> Batch:
  """The batch of `step`, taken from `orders = epoch_orders(state, first_epoch, N)`."""
  n = train_data['label'].shape[0]
  per_epoch = steps_per_epoch(n, batch_size)
  position = step - first_epoch * per_epoch
  start = jnp.where(position < per_epoch, position * batch_size, n + (position - per_epoch) * batch_size)
  idx = jax.lax.dynamic_slice_in_dim(orders, start, batch_size)
  return {'image': train_data['image'][idx], 'label': train_data['label'][idx]}


def make_train_chunk(config: TrainConfig, apply_fn: Apply, tx: optax.GradientTransformation,
                     mesh: Mesh) -> Callable[..., tuple[TrainState, Metrics]]:
  """jit(scan(train_step)): `num_steps` updates per dispatch, with the state donated.

  Each batch is sharded over the mesh's 'data' axis; params stay replicated, so XLA
  all-reduces the gradients when there is more than one device.
  """
  batch_sharding = NamedSharding(mesh, P('data'))
  replicated = NamedSharding(mesh, P())
  # XLA:CPU runs convolutions inside a while loop about 6x slower than straight-line code
  # (jax-ml/jax#12868; measured here: 169 vs 1,400 images/s), so on CPU the scan is unrolled.
  unroll = jax.default_backend() == 'cpu'

  def chunk(state: TrainState, train_data: Batch, orders: jax.Array, first_epoch: jax.Array, num_steps: int):
    def body(state, _):
      batch = get_batch(train_data, orders, first_epoch, state.step, config.batch_size)
      if config.non_digit_fraction:
        mix_key = jax.random.fold_in(_step_key(state), 7)
        batch = mix_non_digits(batch, train_data['non_digits'], mix_key, config.non_digit_fraction)
      if config.pen_digit_fraction:
        pen_key = jax.random.fold_in(_step_key(state), 8)
        batch = mix_non_digits(batch, train_data['pen_digits'], pen_key, config.pen_digit_fraction,
                               bank_labels=train_data['pen_labels'],
                               offset=int(round(config.non_digit_fraction * config.batch_size)))
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
      return train_step(state, batch, apply_fn=apply_fn, tx=tx, config=config)
    if num_steps == 1:
      # A one-step scan still lowers to a while loop, which XLA:CPU runs about 8x slower (see above);
      # the plain step compiles in a third of a 10-step chunk's time and runs at full speed.
      state, metrics = body(state, None)
      return state, jax.tree.map(lambda x: x[None], metrics)
    return jax.lax.scan(body, state, length=num_steps, unroll=unroll)

  return jax.jit(chunk, static_argnums=4, donate_argnums=0, out_shardings=(replicated, replicated),
                 compiler_options=compiler_options())


def _each_batch(batches: Batch):
  """The batches of `data.make_eval_batches` output ([num_batches, B, ...]) one at a time.

  Evaluation jits one batch, not a scan over all of them: the validation, test and other sets then
  share one compiled program, and XLA:CPU does not run the convolutions inside a loop.
  """
  for i in range(batches['label'].shape[0]):
    yield jax.tree.map(lambda x: x[i], batches)


def _replicated_like(batches: Batch) -> NamedSharding | None:
  """Replicated over the mesh the batches live on (None for host arrays), so every process reads it all."""
  sharding = getattr(batches['image'], 'sharding', None)
  return NamedSharding(sharding.mesh, P()) if isinstance(sharding, NamedSharding) else None


@functools.lru_cache(maxsize=None)
def _eval_program(fn: Callable, apply_fn: ApplyFn, out_sharding: NamedSharding | None) -> Callable:
  return jax.jit(functools.partial(fn, apply_fn=apply_fn), out_shardings=out_sharding,
                 compiler_options=compiler_options())


def to_host(tree: Any) -> Any:
  """numpy copies of replicated arrays; with several processes each reads its own replica."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else x, tree)


def metrics_of(logits: np.ndarray, labels: np.ndarray, prefix: str = 'test') -> dict[str, float]:
  """Exact mean loss and digit accuracy of host logits [N, C], named `{prefix}_loss` etc.

  The accuracy is that of the best of the ten digits, whatever a non-digit output says. The loss is
  summed in float32, the model's precision, so logits that blew up give an infinite loss.
  """
  logits = np.asarray(logits, np.float32)
  shifted = logits - logits.max(-1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
  loss = -log_probs[np.arange(len(labels)), labels]
  correct = logits[:, :NUM_CLASSES].argmax(-1) == labels
  with np.errstate(over='ignore'):  # An overflow is the answer (inf), reported by the caller.
    total = loss.sum()
  return {f'{prefix}_loss': float(total) / len(labels), f'{prefix}_accuracy': float(correct.mean()),
          f'{prefix}_count': int(len(labels))}


def evaluate(apply_fn: ApplyFn, variables: Variables, batches: Batch, prefix: str = 'test') -> dict[str, float]:
  """Exact loss and accuracy over all the examples in `batches`, named `{prefix}_loss` etc."""
  return metrics_of(*logits_of(apply_fn, variables, batches), prefix)


def _logits(variables: Variables, batch: Batch, *, apply_fn: ApplyFn) -> tuple[jax.Array, jax.Array, jax.Array]:
  return apply_fn(variables, batch['image']), batch['label'], batch['mask']


def logits_of(apply_fn: ApplyFn, variables: Variables, batches: Batch) -> tuple[np.ndarray, np.ndarray]:
  """Host (logits [N, C], labels [N]) of the unmasked examples of `batches` (from `data.make_eval_batches`)."""
  fn = _eval_program(_logits, apply_fn, _replicated_like(batches))
  parts = [to_host(fn(variables, batch)) for batch in _each_batch(batches)]
  keep = [mask > 0 for _, _, mask in parts]
  return (np.concatenate([logits[k] for (logits, _, _), k in zip(parts, keep)]),
          np.concatenate([labels[k] for (_, labels, _), k in zip(parts, keep)]))


def fit_calibration(apply_fn: ApplyFn, variables: Variables, val: tuple[np.ndarray, np.ndarray],
                    val_non_digit_batches: Batch | None, val_pen_batches: Batch | None = None) -> dict[str, Any]:
  """The temperature and "not a digit" threshold of `variables`, chosen on the validation data alone:
  the MNIST validation split (its `logits_of`), and (if given) digits drawn with the window's pen from
  validation seeds."""
  logits, labels = val
  temperature = calibration.fit_temperature(logits, labels)
  probs, scores = calibration.calibrated(logits, temperature)
  threshold = calibration.choose_threshold(scores)
  pen = None
  if val_pen_batches is not None:
    # Drawn digits are further from MNIST than its own validation digits: the threshold also turns away
    # at most 1% of them.
    _, pen = calibration.calibrated(logits_of(apply_fn, variables, val_pen_batches)[0], temperature)
    threshold = min(threshold, calibration.choose_threshold(pen, calibration.MAX_PEN_DIGIT_REJECTION))
  result = {'temperature': temperature, 'threshold': threshold,
            'score': 'p_digit' if logits.shape[-1] > NUM_CLASSES else 'max_probability',
            'val_ece': calibration.expected_calibration_error(probs, labels),
            'val_digits_rejected': float(np.mean(scores < threshold)),
            'val_named_correctly': float(np.mean((scores >= threshold) & (probs.argmax(-1) == labels)))}
  if pen is not None:
    result['val_pen_digits_rejected'] = float(np.mean(pen < threshold))
  if val_non_digit_batches is not None:
    _, nd_scores = calibration.calibrated(logits_of(apply_fn, variables, val_non_digit_batches)[0], temperature)
    result['val_non_digits_rejected'] = float(np.mean(nd_scores < threshold))
  return result


def _all_finite(tree: Any) -> bool:
  """Whether every float leaf is finite, checked on host copies: compiling a device check cost about a
  quarter of a second of the fast preset, and the state is small."""
  return all(np.isfinite(x).all() for x in jax.tree.leaves(to_host(tree)) if np.issubdtype(x.dtype, np.floating))


def _put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A global array from host data that every process holds in full (works multi-host too)."""
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


class TrainingInterrupted(Exception):
  """SIGINT/SIGTERM arrived; the state was saved at `step`."""

  def __init__(self, signum: int, step: int, workdir: Path):
    self.signum, self.step, self.workdir = signum, step, workdir
    super().__init__(f'interrupted by {signal.Signals(signum).name} at step {step}; checkpoint saved in '
                     f'{workdir}; rerun the same command to resume')


class RunDirError(ValueError):
  """The run directory cannot be used for this config (another model, other settings, stray files)."""


@contextlib.contextmanager
def _stop_signals():
  """Turns SIGINT/SIGTERM into a flag (a one-item list) the loop checks between chunks (main thread only)."""
  received: list[int] = []
  previous = {}
  if threading.current_thread() is threading.main_thread():
    for sig in (signal.SIGINT, signal.SIGTERM):
      previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
  try:
    yield received
  finally:
    for sig, handler in previous.items():
      signal.signal(sig, handler)


class MetricsLog:
  """metrics.jsonl: one row per chunk (train) and per evaluation."""

  def __init__(self, path: Path, enabled: bool):
    self.path, self.enabled = path, enabled

  def truncate_after(self, step: int) -> str | None:
    """Keeps the rows up to `step` (rewritten atomically); drops a torn last line and says so."""
    if not (self.enabled and self.path.exists()):
      return None
    lines = self.path.read_text(errors='replace').splitlines()
    rows, note = [], None
    for i, line in enumerate(lines):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        row_step = int(row['step'])
      except (ValueError, KeyError, TypeError) as e:
        if i == len(lines) - 1:  # A kill while appending: the last line is cut off.
          note = f'dropped the torn last line of {self.path}'
          continue
        raise RunDirError(f'{self.path} line {i + 1} is not a metrics row ({type(e).__name__}); '
                          'fix or delete that line') from e
      if row_step <= step:
        rows.append(line)
    ckpt_lib.write_file_atomically(self.path, ''.join(r + '\n' for r in rows).encode())
    return note

  def write(self, row: dict[str, Any]) -> None:
    if self.enabled:
      with self.path.open('a') as f:
        f.write(json.dumps(row) + '\n')


@dataclasses.dataclass
class _Run:
  """What the loop works with; built by `_set_up`."""
  config: TrainConfig
  workdir: Path
  checkpoints: ckpt_lib.RunCheckpoints
  apply_fn: Apply
  tx: optax.GradientTransformation
  mesh: Mesh
  train_data: Batch
  eval_batches: Batch  # the test set, for reporting
  val_batches: Batch  # the validation split, for every choice
  val_non_digit_batches: Batch | None
  val_pen_batches: Batch | None
  train_chunk: _ChunkPrograms
  initial_state: TrainState | None  # a fresh run's state; None when the run dir has a checkpoint
  log: MetricsLog
  say: Callable[[str], None]
  is_main: bool


def _check_resume(saved: dict[str, Any], config: TrainConfig, where: Path) -> list[str]:
  """Refuses a resume with changed settings; `steps` may grow. Returns notes to print."""
  try:
    saved_config = TrainConfig.from_dict(saved)
  except (TypeError, ValueError) as e:
    raise RunDirError(f'the config saved in {where} is not a valid TrainConfig ({e})') from e
  if saved_config.model != config.model:
    raise RunDirError(f'{where} holds a checkpoint of another model ({saved_config.model})')
  changed = [f.name for f in dataclasses.fields(TrainConfig)
             if f.name not in ('steps', 'model', 'eval_every', 'cpu_devices')
             and getattr(saved_config, f.name) != getattr(config, f.name)]
  if changed:
    diffs = ', '.join(f'{n} {getattr(saved_config, n)!r} -> {getattr(config, n)!r}' for n in changed)
    raise RunDirError(f'{where} was trained with other settings ({diffs}); resume with the same settings, '
                      'or start a new run dir')
  notes = []
  if config.steps != saved_config.steps:
    notes.append(f'steps changed from {saved_config.steps} to {config.steps}: the cosine learning-rate schedule '
                 f'now runs over {config.steps} steps, so the rate changes at the resumed step')
  return notes


def _set_up(config: TrainConfig, workdir: str | Path, stack: contextlib.ExitStack, pool: concurrent.futures.Executor,
            *, data_dir: str | None, keep_checkpoints: int, progress: bool, steps_per_dispatch: int) -> _Run:
  num_devices = jax.device_count()
  if config.batch_size % num_devices:
    raise ValueError(f'batch size {config.batch_size} is not divisible by the {num_devices} devices; '
                     f'use a multiple of {num_devices}')
  is_main = jax.process_index() == 0
  checkpoints = ckpt_lib.RunCheckpoints(workdir, keep=keep_checkpoints)
  stack.callback(checkpoints.close)
  for name in ('summary.json', 'metrics.jsonl'):  # Found now, not after hours of training.
    path = checkpoints.workdir / name
    if path.is_symlink() or (path.exists() and not path.is_file()):
      raise RunDirError(f'{path} is not a regular file; move it away, or start a new run dir')
  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated = NamedSharding(mesh, P())
  # The train chunk's shapes follow from the size of the training set, known from its labels file: the
  # chunk compiles in the pool while the main thread builds the initial state and decodes the images.
  num_train = data_lib.mnist_size('train', data_dir)
  if config.val_size >= num_train - config.batch_size:
    raise ValueError(f'val_size {config.val_size} leaves fewer than a batch of the {num_train:,} training '
                     'images; lower --val-size')
  apply_fn, tx = make_apply_fn(CNN.from_config(config.model)), make_optimizer(config)
  shapes = _train_data_shapes(config, num_train - config.val_size, replicated)
  train_chunk = _ChunkPrograms(config, apply_fn, tx, mesh, shapes, pool, steps_per_dispatch)
  initial_state = None
  if checkpoints.state.latest_step() is None:
    initial_state = jax.device_put(_training_initial_state(config), replicated)
  train_images, train_labels = data_lib.load_mnist('train', data_dir)
  test_images, test_labels = data_lib.load_mnist('test', data_dir)
  (train_images, train_labels), (val_images, val_labels) = data_lib.split_validation(
      train_images, train_labels, config.val_size)
  if config.batch_size > len(train_labels):
    raise ValueError(f'batch size {config.batch_size} is larger than the {len(train_labels):,} training images')
  eval_bs = -(-data_lib.EVAL_BATCH_SIZE // num_devices) * num_devices
  eval_sharding = NamedSharding(mesh, P(None, 'data'))
  say = (lambda text: print(text, flush=True)) if (progress and is_main) else (lambda text: None)
  eval_batches_of = lambda images, labels: {k: _put(v, eval_sharding) for k, v in
                                     data_lib.make_eval_batches(images, labels, eval_bs).items()}
  train_data = {'image': _put(train_images, replicated), 'label': _put(train_labels, replicated)}
  val_non_digit_batches = None
  if config.model.non_digit_class:
    # Made on the host from the run's seed (training) and a fixed seed (validation), from the digits of
    # each split, so validation never sees a training example.
    count = shapes['non_digits'].shape[0]
    say(f'making {count:,} synthetic non-digits')
    bank, _ = nondigits.make_non_digits(count, config.seed, (train_images, train_labels))
    train_data['non_digits'] = _put(bank, replicated)
    val_bank, _ = nondigits.make_non_digits(max(1, config.val_size // 2), data_lib.VALIDATION_SEED,
                                            (val_images, val_labels))
    val_non_digit_batches = eval_batches_of(val_bank, np.full(len(val_bank), nondigits.NON_DIGIT_LABEL, np.int32))
  val_pen_batches = None
  if config.pen_digit_fraction:
    count = shapes['pen_digits'].shape[0]
    say(f'making {count:,} digits drawn with the window\'s pen')
    pen_images, pen_labels = nondigits.make_pen_digits(count, config.seed + 1,
                                                       (train_images, train_labels), config.pen_mnist_share,
                                                       config.pen_soft_share)
    train_data['pen_digits'], train_data['pen_labels'] = _put(pen_images, replicated), _put(pen_labels, replicated)
    val_pen_batches = eval_batches_of(*nondigits.make_pen_digits(
        max(1, config.val_size // 5), data_lib.VALIDATION_SEED + 1, (val_images, val_labels), config.pen_mnist_share,
        config.pen_soft_share))
  train_chunk.check_data(train_data)
  return _Run(
      config=config, workdir=checkpoints.workdir, checkpoints=checkpoints, apply_fn=apply_fn, tx=tx, mesh=mesh,
      train_data=train_data, eval_batches=eval_batches_of(test_images, test_labels),
      val_batches=eval_batches_of(val_images, val_labels), val_non_digit_batches=val_non_digit_batches,
      val_pen_batches=val_pen_batches, train_chunk=train_chunk, initial_state=initial_state,
      log=MetricsLog(checkpoints.workdir / 'metrics.jsonl', enabled=is_main), say=say, is_main=is_main)


def _init_or_restore(run: _Run, resume: bool) -> TrainState | None:
  """The state to continue from: fresh, restored, or None when the run is already complete."""
  config, workdir = run.config, run.workdir
  start = run.checkpoints.state.latest_step()
  if start is None:
    if (workdir / 'summary.json').exists():
      raise RunDirError(f'{workdir} holds summary.json but no checkpoint to resume from; start a new run dir, '
                        'or delete it')
    # Rows of a run killed before its first checkpoint: those steps are trained again.
    run.log.truncate_after(0)
    return run.initial_state
  if not resume:
    raise RunDirError(f'{workdir} already holds checkpoints up to step {start}; start a new run dir, or resume')
  for note in _check_resume(run.checkpoints.state.read_json(start, 'config'), config, run.checkpoints.state.step_dir(start)):
    run.say(f'note: {note}')
  if start >= config.steps and (workdir / 'summary.json').is_file():
    run.say(f'already at step {start}; nothing to do')
    return None
  note = run.log.truncate_after(start)
  if note:
    run.say(f'note: {note}')
  run.say(f'resuming from step {start} (of {config.steps})')
  return run.checkpoints.state.restore(start, 'state', run.train_chunk.abstract_state)


def _evaluate_and_checkpoint(run: _Run, state: TrainState, step: int, best: dict[str, Any] | None,
                             seconds: float) -> dict[str, Any]:
  """Evaluates, saves best (if validation accuracy improved) and state, logs; returns the metrics row.

  `seconds`: wall time since this process began training (evaluations included), logged as the row's
  `seconds` so that metrics.jsonl gives time-to-accuracy curves.

  A non-finite state is never saved. The best checkpoint carries its calibration, fitted on the
  validation split at the moment it is chosen.
  """
  if not _all_finite(state):
    raise FloatingPointError(f'the weights are not finite at step {step}; the state was not saved; lower the '
                             'learning rate and resume from the last checkpoint')
  metrics, val = run_evaluation(run, state)
  row = {'step': step, **metrics, 'seconds': round(seconds, 1)}
  if not np.isfinite(row['val_loss']):
    raise FloatingPointError(f'the validation loss is {row["val_loss"]} at step {step}; the state was not saved; '
                             'lower the learning rate and resume from the last checkpoint')
  config = run.config.to_dict()
  # Best first: a crash between the two saves then re-runs this evaluation on resume.
  if best is None or row['val_accuracy'] > best['val_accuracy']:
    variables = eval_variables(state)
    calib = fit_calibration(run.apply_fn, variables, val, run.val_non_digit_batches,
                            run.val_pen_batches)
    run.checkpoints.best.save(step, {'variables': variables},
                              {'config': config, 'metrics': row, 'calibration': calib})
  run.checkpoints.state.save(step, {'state': state}, {'config': config})
  run.log.write(row)
  run.say(f'step {step}: val accuracy {row["val_accuracy"]:.2%}, test accuracy {row["test_accuracy"]:.2%}')
  return row


def run_evaluation(run: _Run, state: TrainState) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
  """(validation and test metrics, the validation (logits, labels) for calibration)."""
  variables = eval_variables(state)
  val = logits_of(run.apply_fn, variables, run.val_batches)
  test = logits_of(run.apply_fn, variables, run.eval_batches)
  return {**metrics_of(*val, 'val'), **metrics_of(*test, 'test')}, val


class _ChunkPrograms:
  """The train chunk compiled ahead of time for each length it runs at.

  The usual length (`steps_per_dispatch`) starts compiling in the pool's thread from the shapes of the
  training data (`_train_data_shapes`), before MNIST is decoded, while the main thread builds the
  initial state (or later restores). The same thread then compiles the evaluation program while the
  first chunks train (`warm_up_evaluation`; `evaluation_ready` waits for it).
  """

  def __init__(self, config: TrainConfig, apply_fn: Apply, tx: optax.GradientTransformation, mesh: Mesh,
               train_data: dict[str, jax.ShapeDtypeStruct], pool: concurrent.futures.Executor,
               steps_per_dispatch: int):
    self._jit = make_train_chunk(config, apply_fn, tx, mesh)
    self._compiled: dict[int, Any] = {}
    self._pool = pool
    self.replicated = NamedSharding(mesh, P())
    # The train state's shapes and shardings: what the chunk compiles for and a resumed run restores into.
    self.abstract_state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self.replicated),
                                       jax.eval_shape(lambda: create_train_state(config)))
    orders = jax.ShapeDtypeStruct((2 * train_data['label'].shape[0],), jnp.int32, sharding=self.replicated)
    epoch = jax.ShapeDtypeStruct((), jnp.int32, sharding=self.replicated)
    self._abstract = (self.abstract_state, train_data, orders, epoch)
    self.steps_per_dispatch = steps_per_dispatch
    self._pending = pool.submit(self._compile, steps_per_dispatch)
    self._evaluation = None

  def check_data(self, train_data: Batch) -> None:
    """Fails loudly if the data on the device does not have the shapes the chunk was compiled for."""
    expected = {k: (v.shape, v.dtype) for k, v in self._abstract[1].items()}
    actual = {k: (v.shape, v.dtype) for k, v in train_data.items()}
    if expected != actual:
      raise RuntimeError(f'internal error: the train chunk was compiled for {expected}, the data is {actual}')

  def warm_up_evaluation(self, run: _Run) -> None:
    # One process only: the warm-up runs the program, and with several processes its collectives could
    # interleave with the training's in a different order on each.
    if jax.process_count() == 1:
      self._evaluation = self._pool.submit(_warm_up_evaluation, run, self.abstract_state)

  def evaluation_ready(self) -> None:
    if self._evaluation is not None:
      self._evaluation.result()

  def _compile(self, n: int):
    return self._jit.lower(*self._abstract, n).compile()

  def __call__(self, state: TrainState, train_data: Batch, orders: jax.Array, first_epoch: jax.Array,
               n: int) -> tuple[TrainState, Metrics]:
    if n not in self._compiled:
      self._compiled[n] = self._pending.result() if n == self.steps_per_dispatch else self._compile(n)
    return self._compiled[n](state, train_data, orders, first_epoch)


def _train_data_shapes(config: TrainConfig, num_train: int, sharding: NamedSharding) -> dict[str, jax.ShapeDtypeStruct]:
  """The shapes of `_Run.train_data` for `num_train` training digits: `_set_up` makes the banks at these
  sizes, and checks the data against them once it is built."""
  image = lambda n: jax.ShapeDtypeStruct((n, *IMAGE_SHAPE), jnp.uint8, sharding=sharding)
  label = lambda n: jax.ShapeDtypeStruct((n,), jnp.int32, sharding=sharding)
  shapes = {'image': image(num_train), 'label': label(num_train)}
  if config.model.non_digit_class:
    shapes['non_digits'] = image(config.non_digit_bank)
  if config.pen_digit_fraction:
    shapes['pen_digits'], shapes['pen_labels'] = image(config.non_digit_bank // 2), label(config.non_digit_bank // 2)
  return shapes


def _warm_up_evaluation(run: _Run, abstract_state: TrainState) -> None:
  """Compiles the evaluation program by running it on zero weights and the first validation batch: jit
  caches it for the real weights, which have the same shapes and shardings."""
  replicated = NamedSharding(run.mesh, P())
  abstract = jax.eval_shape(eval_variables, abstract_state)
  zeros = jax.tree.map(lambda a: _put(np.zeros(a.shape, a.dtype), replicated), abstract)
  fn = _eval_program(_logits, run.apply_fn, _replicated_like(run.val_batches))
  jax.block_until_ready(fn(zeros, next(_each_batch(run.val_batches))))


def _train_loop(run: _Run, state: TrainState, stop: list[int], train_chunk: _ChunkPrograms,
                progress: bool) -> tuple[TrainState, dict[str, float] | None, float]:
  """Trains to `config.steps`, evaluating and checkpointing every `eval_every` steps.

  Returns the final state, the last evaluation and the best checkpoint's metrics. The host reads each chunk's
  metrics one chunk behind, while the next chunk runs, so it never waits on the device.
  """
  from tqdm.auto import tqdm
  config = run.config
  step = int(to_host(state.step))
  best_step = run.checkpoints.best.latest_step()
  best = None if best_step is None else run.checkpoints.best.read_json(best_step, 'metrics')
  n_train = run.train_data['label'].shape[0]
  per_epoch = steps_per_epoch(n_train, config.batch_size)
  bar = tqdm(total=config.steps, initial=min(step, config.steps), unit='step', dynamic_ncols=True,
             disable=not (progress and run.is_main), desc='train')
  last_metrics = None
  orders_epoch = orders = first_epoch = None
  pending = None
  clock = [time.perf_counter()]
  started = clock[0]

  def drain(metrics, chunk_start, n):
    m = to_host(metrics)
    now = time.perf_counter()
    rate = n * config.batch_size / max(now - clock[0], 1e-9)
    clock[0] = now
    if not np.all(np.isfinite(m['loss'])):
      bad = int(np.argmin(np.isfinite(m['loss'])))
      raise FloatingPointError(f'training loss became {m["loss"][bad]} at step {chunk_start + 1 + bad}; the state '
                               'was not saved; lower the learning rate and resume from the last checkpoint')
    loss, acc = float(np.mean(m['loss'])), float(np.mean(m['accuracy']))
    bar.set_postfix(loss=f'{loss:.4f}', acc=f'{acc:.4f}', img_s=f'{rate:,.0f}', refresh=False)
    bar.update(n)
    run.log.write({'step': chunk_start + n, 'train_loss': loss, 'train_accuracy': acc})

  with contextlib.closing(bar):
    while step < config.steps:
      next_eval = min((step // config.eval_every + 1) * config.eval_every, config.steps)
      n = min(train_chunk.steps_per_dispatch, next_eval - step, per_epoch)
      if orders_epoch != step // per_epoch:
        orders_epoch = step // per_epoch
        first_epoch = _put(np.int32(orders_epoch), train_chunk.replicated)
        orders = _put(epoch_orders(state, orders_epoch, n_train), train_chunk.replicated)
      state, metrics = train_chunk(state, run.train_data, orders, first_epoch, n)
      if pending is not None:
        drain(*pending)
      pending = (metrics, step, n)
      step += n
      if step == next_eval or stop:
        drain(*pending)
        pending = None
        if step == next_eval:
          train_chunk.evaluation_ready()
          last_metrics = _evaluate_and_checkpoint(run, state, step, best, time.perf_counter() - started)
          if best is None or last_metrics['val_accuracy'] > best['val_accuracy']:
            best = last_metrics
          clock[0] = time.perf_counter()  # Evaluation and saving are not training throughput.
        else:
          run.checkpoints.state.save(step, {'state': state}, {'config': run.config.to_dict()})
        if stop:
          raise TrainingInterrupted(stop[0], step, run.workdir)
  return state, last_metrics, best


def _summary(run: _Run, state: TrainState, metrics: dict[str, float], best: dict[str, Any] | None, first_step: int,
             resumed: bool, seconds: float) -> dict[str, Any]:
  step = int(to_host(state.step))
  device = jax.devices()[0]
  images = (step - first_step) * run.config.batch_size
  return {
      'step': step,
      'val_accuracy': metrics['val_accuracy'],
      'test_accuracy': metrics['test_accuracy'],
      'test_loss': metrics['test_loss'],
      # The checkpoint that inference loads: chosen on validation accuracy; its test figure is only reported.
      'best_step': None if best is None else best['step'],
      'best_val_accuracy': None if best is None else best['val_accuracy'],
      'best_test_accuracy': None if best is None else best['test_accuracy'],
      'resumed_from_step': first_step if resumed else None,
      'train_seconds': round(seconds, 3),
      'images_per_second': round(images / seconds, 1) if images else None,
      'device_kind': device.device_kind,
      'platform': device.platform,
      'device_count': jax.device_count(),
      'process_count': jax.process_count(),
      'jax_version': jax.__version__,
      'checkpoint_dir': str(run.workdir),
      'config': run.config.to_dict(),
  }


def train_and_evaluate(config: TrainConfig, workdir: str | Path, *, data_dir: str | None = None,
                       keep_checkpoints: int = 3, steps_per_dispatch: int = 3, resume: bool = True,
                       progress: bool = True) -> dict[str, Any]:
  """Trains `config.steps` steps (resuming from `workdir`), evaluates, checkpoints; returns the summary.

  Args:
    data_dir: folder with the MNIST files (default: $DIGITREC_DATA_DIR, else download).
    keep_checkpoints: how many train states to keep for resume.
    steps_per_dispatch: steps fused into one jitted dispatch; metrics reach the host once per chunk.
    resume: continue from the run dir's latest checkpoint; False refuses a dir that has one.
  """
  if steps_per_dispatch <= 0 or keep_checkpoints <= 0:
    raise ValueError('steps_per_dispatch and keep_checkpoints must be positive')
  with contextlib.ExitStack() as stack:
    pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='compile'))
    run = _set_up(config, workdir, stack, pool, data_dir=data_dir, keep_checkpoints=keep_checkpoints,
                  progress=progress, steps_per_dispatch=steps_per_dispatch)
    stop = stack.enter_context(_stop_signals())
    run.train_chunk.warm_up_evaluation(run)
    state = _init_or_restore(run, resume)
    if state is None:
      return ckpt_lib.read_json_file(run.workdir / 'summary.json')
    first_step = int(to_host(state.step))
    start = time.perf_counter()
    state, metrics, best = _train_loop(run, state, stop, run.train_chunk, progress)
    seconds = time.perf_counter() - start
    if metrics is None:  # Restored at the final step (its summary was lost): report that state.
      metrics, _ = run_evaluation(run, state)
    summary = _summary(run, state, metrics, best, first_step, first_step > 0, seconds)
    if run.is_main:
      ckpt_lib.write_json(run.workdir / 'summary.json', summary)
    return summary
