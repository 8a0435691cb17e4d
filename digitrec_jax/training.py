"""Training: the state, one fused and donated jitted step, exact evaluation, and the loop."""

from __future__ import annotations

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
from digitrec_jax import checkpoint as ckpt_lib
from digitrec_jax import data as data_lib
from digitrec_jax.config import TrainConfig
from digitrec_jax.model import CNN, Apply, ApplyFn, init_params, make_apply_fn

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]
EVAL_BATCH_SIZE = 1000


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array  # int32 scalar: number of updates applied
  params: Any
  opt_state: optax.OptState
  # Raw key data of the run's base key. All randomness is derived from (rng, step), so a
  # resumed run draws exactly the stream an uninterrupted one would have.
  rng: jax.Array
  # Exponential moving average of `params` when config.ema_decay > 0, else None.
  ema_params: Any = None


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """AdamW with linear warm-up and cosine decay over `config.steps`."""
  warmup = min(config.warmup_steps, config.steps // 2)
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=config.learning_rate, warmup_steps=warmup,
      decay_steps=config.steps, end_value=config.learning_rate * 1e-2)
  return optax.adamw(schedule, weight_decay=config.weight_decay)


def create_train_state(config: TrainConfig) -> TrainState:
  """The initial state for `config.seed`."""
  init_key, run_key = jax.random.split(jax.random.key(config.seed))
  params = init_params(CNN.from_config(config.model), init_key)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=make_optimizer(config).init(params), rng=jax.random.key_data(run_key),
                    ema_params=jax.tree.map(jnp.copy, params) if config.ema_decay else None)


def eval_params(state: TrainState) -> Any:
  """The weights to evaluate, checkpoint as best and ship: the EMA when there is one."""
  return state.params if state.ema_params is None else state.ema_params


def _keys(state: TrainState) -> tuple[jax.Array, jax.Array]:
  """(this step's key, the data-order key) of `state`: pure functions of (seed, step)."""
  step_base, data_key = jax.random.split(jax.random.wrap_key_data(state.rng))
  return jax.random.fold_in(step_base, state.step), data_key


def train_step(state: TrainState, batch: Batch, *, apply_fn: Apply, tx: optax.GradientTransformation,
               config: TrainConfig | None = None) -> tuple[TrainState, Metrics]:
  """One optimizer update on `batch`; returns the new state and the batch's loss and accuracy.

  `config` (default `TrainConfig()`) gives label smoothing and augmentation: with it on, the batch's
  images are randomly warped first. With `config.ema_decay` the EMA weights follow the new params.
  """
  config = TrainConfig() if config is None else config
  if (state.ema_params is not None) != (config.ema_decay > 0):
    raise ValueError('the state has EMA weights but config.ema_decay is 0, or the reverse; pass the config '
                     'the state was created with')
  step_key, _ = _keys(state)
  dropout_key, augment_key = jax.random.split(step_key)
  images = batch['image']
  if config.augments:
    affine_key, stroke_key = jax.random.split(augment_key)
    images = augment_lib.random_affine(
        affine_key, images, rotation=config.augment_rotation, scale=config.augment_scale,
        shear=config.augment_shear, shift=config.augment_shift)
    if config.augment_stroke:
      images = augment_lib.random_stroke_width(stroke_key, images, config.augment_stroke)
  label_smoothing = config.label_smoothing

  def loss_fn(params):
    logits, trained = apply_fn.train(params, images, dropout_key)
    if label_smoothing:
      targets = optax.smooth_labels(jax.nn.one_hot(batch['label'], logits.shape[-1]), label_smoothing)
      loss = optax.softmax_cross_entropy(logits, targets).mean()
    else:
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
    return loss, (logits, trained)

  (loss, (logits, trained)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  # Batch-norm statistics take the values this batch's forward pass computed, not the optimizer's.
  params = apply_fn.with_statistics(optax.apply_updates(state.params, updates), trained)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch['label'])
  ema = state.ema_params
  if ema is not None:
    # The usual warm-up of the decay, so early averages are not dominated by the random init.
    decay = jnp.minimum(config.ema_decay, (1.0 + state.step) / (10.0 + state.step))
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)
  return new_state, {'loss': loss, 'accuracy': accuracy}


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch; the remainder of each epoch's shuffle is dropped."""
  return num_examples // batch_size


@functools.partial(jax.jit, static_argnums=2)
def epoch_orders(state: TrainState, epoch: jax.Array, num_examples: int) -> jax.Array:
  """The shuffled example order of `epoch` followed by that of `epoch + 1`, keyed by (seed, epoch).

  A chunk of at most one epoch's steps always lies within these two epochs. Computing the
  permutation once per epoch, not once per step, matters: a 60k-element shuffle costs
  about as much as a fifth of a training step on CPU.
  """
  _, data_key = _keys(state)
  perm = lambda e: jax.random.permutation(jax.random.fold_in(data_key, e), num_examples)
  return jnp.concatenate([perm(epoch), perm(epoch + 1)]).astype(jnp.int32)


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
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
      return train_step(state, batch, apply_fn=apply_fn, tx=tx, config=config)
    return jax.lax.scan(body, state, length=num_steps, unroll=unroll)

  return jax.jit(chunk, static_argnums=4, donate_argnums=0, out_shardings=(replicated, replicated))


def eval_step(params: Any, batch: Batch, *, apply_fn: ApplyFn) -> Metrics:
  """Sums (not means) of loss and correct predictions over the unmasked examples of `batch`."""
  logits = apply_fn(params, batch['image'])
  mask = batch['mask']
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
  correct = jnp.argmax(logits, -1) == batch['label']
  return {'loss': jnp.sum(loss * mask), 'correct': jnp.sum(correct * mask), 'count': jnp.sum(mask)}


def make_eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
  """[num_batches, batch_size, ...] arrays with a mask, so a partial last batch counts exactly."""
  n = labels.shape[0]
  num_batches = -(-n // batch_size)
  pad = num_batches * batch_size - n
  mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
  labels = np.concatenate([labels, np.zeros(pad, labels.dtype)])
  return {'image': images.reshape(num_batches, batch_size, *images.shape[1:]),
          'label': labels.reshape(num_batches, batch_size),
          'mask': mask.reshape(num_batches, batch_size)}


@functools.partial(jax.jit, static_argnames='apply_fn')
def _eval_sums(params: Any, batches: Batch, apply_fn: ApplyFn) -> Metrics:
  def body(totals, batch):
    sums = eval_step(params, batch, apply_fn=apply_fn)
    return jax.tree.map(jnp.add, totals, sums), None
  zeros = {'loss': jnp.zeros(()), 'correct': jnp.zeros(()), 'count': jnp.zeros(())}
  # Unrolled on CPU for the same reason as the train chunk.
  return jax.lax.scan(body, zeros, batches, unroll=jax.default_backend() == 'cpu')[0]


def evaluate(apply_fn: ApplyFn, params: Any, batches: Batch) -> dict[str, float]:
  """Exact test loss and accuracy over all the examples in `batches`."""
  sums = jax.device_get(_eval_sums(params, batches, apply_fn))
  count = float(sums['count'])
  return {'test_loss': float(sums['loss']) / count, 'test_accuracy': float(sums['correct']) / count,
          'test_count': int(count)}


def _put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A global array from host data that every process holds in full (works multi-host too)."""
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


class TrainingInterrupted(Exception):
  """SIGINT/SIGTERM arrived; the state was saved at `step`."""

  def __init__(self, signum: int, step: int, workdir: Path):
    self.signum, self.step, self.workdir = signum, step, workdir
    super().__init__(f'interrupted by {signal.Signals(signum).name} at step {step}; checkpoint saved in '
                     f'{workdir}; rerun the same command to resume')


class _StopSignals:
  """Turns SIGINT/SIGTERM into a flag the loop checks between chunks (main thread only)."""

  def __init__(self):
    self.signum: int | None = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGINT, signal.SIGTERM):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    self.signum = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


class _Log:
  """metrics.jsonl: one row per chunk (train) and per evaluation; resumes cut rows past the restored step."""

  def __init__(self, path: Path, start_step: int, enabled: bool):
    self.path, self.enabled = path, enabled
    if enabled and path.exists():
      rows = [line for line in path.read_text().splitlines() if line.strip()]
      keep = [r for r in rows if json.loads(r).get('step', 0) <= start_step]
      path.write_text(''.join(r + '\n' for r in keep))

  def write(self, row: dict[str, Any]) -> None:
    if self.enabled:
      with self.path.open('a') as f:
        f.write(json.dumps(row) + '\n')


def train_and_evaluate(config: TrainConfig, workdir: str | Path, *, resume: bool = True,
                       progress: bool = True) -> dict[str, Any]:
  """Trains `config.steps` steps (resuming from `workdir`), evaluates, checkpoints; returns the summary."""
  from tqdm.auto import tqdm

  num_devices = jax.device_count()
  if config.batch_size % num_devices:
    raise ValueError(f'batch size {config.batch_size} is not divisible by the {num_devices} devices; '
                     f'use a multiple of {num_devices}')
  is_main = jax.process_index() == 0
  mesh = Mesh(np.array(jax.devices()), ('data',))
  replicated = NamedSharding(mesh, P())

  checkpoints = ckpt_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints)
  workdir = checkpoints.workdir
  stop = _StopSignals()
  try:
    stop.__enter__()
    start_step = checkpoints.latest_step()
    if start_step is not None and not resume:
      raise ckpt_lib.CheckpointError(f'{workdir} already holds checkpoints up to step {start_step}; '
                                     'pass a new --checkpoint-dir to start afresh, or drop --no-resume')
    if start_step is not None:
      saved = checkpoints.saved_config(start_step)
      if saved.model != config.model:
        raise ckpt_lib.CheckpointError(
            f'{workdir} holds a checkpoint of another model ({saved.model}); '
            'pass a new --checkpoint-dir or the same model settings')

    train_images, train_labels = data_lib.load_mnist('train', config.data_dir)
    test_images, test_labels = data_lib.load_mnist('test', config.data_dir)
    train_data = {'image': _put(train_images, replicated), 'label': _put(train_labels, replicated)}
    eval_bs = -(-EVAL_BATCH_SIZE // num_devices) * num_devices
    eval_sharding = NamedSharding(mesh, P(None, 'data'))
    eval_batches = {k: _put(v, eval_sharding)
                    for k, v in make_eval_batches(test_images, test_labels, eval_bs).items()}

    apply_fn = make_apply_fn(CNN.from_config(config.model))
    tx = make_optimizer(config)
    if start_step is None:
      state = jax.device_put(create_train_state(config), replicated)
      step = 0
    else:
      state = checkpoints.restore_state(start_step, jax.eval_shape(lambda: create_train_state(config)), replicated)
      step = start_step
    train_chunk = make_train_chunk(config, apply_fn, tx, mesh)
    log = _Log(workdir / 'metrics.jsonl', step, enabled=is_main)
    best = checkpoints.best_metrics()
    best_accuracy = -1.0 if best is None else best['test_accuracy']

    bar = tqdm(total=config.steps, initial=min(step, config.steps), unit='step', dynamic_ncols=True,
               disable=not (progress and is_main), desc='train')
    t_start = time.perf_counter()
    first_step = step
    pending = None
    eval_metrics = None
    last_drain = [time.perf_counter()]

    def drain(pending):
      """Host side of a finished chunk; runs while the next chunk computes."""
      metrics, chunk_start, n = pending
      m = jax.device_get(metrics)
      now = time.perf_counter()
      rate = n * config.batch_size / max(now - last_drain[0], 1e-9)
      last_drain[0] = now
      if not np.all(np.isfinite(m['loss'])):
        bad = chunk_start + 1 + int(np.argmin(np.isfinite(m['loss'])))
        raise FloatingPointError(f'training loss became {m["loss"][bad - chunk_start - 1]} at step {bad}; '
                                 'the state was not saved; lower --learning-rate and resume from '
                                 'the last checkpoint')
      loss, acc = float(np.mean(m['loss'])), float(np.mean(m['accuracy']))
      bar.set_postfix(loss=f'{loss:.4f}', acc=f'{acc:.4f}', img_s=f'{rate:,.0f}', refresh=False)
      bar.update(n)
      log.write({'step': chunk_start + n, 'train_loss': loss, 'train_accuracy': acc})

    per_epoch = steps_per_epoch(train_labels.shape[0], config.batch_size)
    orders_epoch, orders = None, None
    while step < config.steps:
      next_eval = min((step // config.eval_every + 1) * config.eval_every, config.steps)
      n = min(config.steps_per_dispatch, next_eval - step, per_epoch)
      if orders_epoch != step // per_epoch:
        orders_epoch = step // per_epoch
        first_epoch = jnp.int32(orders_epoch)
        orders = epoch_orders(state, first_epoch, train_labels.shape[0])
      state, metrics = train_chunk(state, train_data, orders, first_epoch, n)
      # One chunk behind: read the previous chunk's metrics while this one runs.
      if pending is not None:
        drain(pending)
      pending = (metrics, step, n)
      step += n
      if stop.signum is not None and step != next_eval:
        drain(pending)
        checkpoints.save_state(step, state, config)
        bar.close()
        raise TrainingInterrupted(stop.signum, step, workdir)
      if step == next_eval:
        drain(pending)
        pending = None
        eval_metrics = evaluate(apply_fn, eval_params(state), eval_batches)
        row = {'step': step, **eval_metrics}
        # Best first: a crash between the two saves then re-runs this evaluation on resume.
        if eval_metrics['test_accuracy'] > best_accuracy:
          best_accuracy = eval_metrics['test_accuracy']
          checkpoints.save_best(step, eval_params(state), config, row)
        checkpoints.save_state(step, state, config)
        last_drain[0] = time.perf_counter()  # Evaluation and saving are not training throughput.
        log.write(row)
        if stop.signum is not None:
          bar.close()
          raise TrainingInterrupted(stop.signum, step, workdir)
        if progress and is_main:
          bar.write(f'step {step}: test accuracy {eval_metrics["test_accuracy"]:.2%}, '
                    f'test loss {eval_metrics["test_loss"]:.4f}')
    bar.close()
    train_seconds = time.perf_counter() - t_start
    if eval_metrics is None:  # Nothing left to train: report the restored state.
      eval_metrics = evaluate(apply_fn, eval_params(state), eval_batches)
    device = jax.devices()[0]
    images = (step - first_step) * config.batch_size
    summary = {
        'step': step,
        'test_accuracy': eval_metrics['test_accuracy'],
        'test_loss': eval_metrics['test_loss'],
        'best_test_accuracy': max(best_accuracy, eval_metrics['test_accuracy']),
        'resumed_from_step': first_step if start_step is not None else None,
        'train_seconds': round(train_seconds, 3),
        'images_per_second': round(images / train_seconds, 1) if images else None,
        'device_kind': device.device_kind,
        'platform': device.platform,
        'device_count': num_devices,
        'jax_version': jax.__version__,
        'checkpoint_dir': str(workdir),
        'config': config.to_dict(),
    }
    if is_main:
      ckpt_lib.write_json(workdir / 'summary.json', summary)
    return summary
  finally:
    stop.__exit__()
    checkpoints.close()
