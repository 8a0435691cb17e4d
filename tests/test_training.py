import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from helpers import TINY_MODEL, synthetic_digits

from digitrec_jax import CNN, TrainConfig, create_train_state, make_apply_fn, train_and_evaluate, train_step
from digitrec_jax import data as data_lib
from digitrec_jax import training


def _setup(config):
  apply_fn = make_apply_fn(CNN.from_config(config.model))
  tx = training.make_optimizer(config)
  return apply_fn, tx


def _variables(state):
  return {'params': state.params, 'batch_stats': state.batch_stats}


def _batch(n=32, seed=0):
  images, labels = synthetic_digits(n, seed)
  return {'image': jnp.asarray(images), 'label': jnp.asarray(labels, jnp.int32)}


def test_one_step_changes_every_parameter_and_keeps_them_finite():
  config = TrainConfig(steps=10, warmup_steps=0, model=TINY_MODEL)
  apply_fn, tx = _setup(config)
  state = create_train_state(config)
  before = jax.device_get(state.params)  # Donation deletes the old buffers.
  step = jax.jit(functools.partial(train_step, apply_fn=apply_fn, tx=tx, config=config), donate_argnums=0)
  state, metrics = step(state, _batch())
  after = jax.device_get(state.params)
  for path, old in jax.tree_util.tree_leaves_with_path(before):
    new = functools.reduce(lambda t, k: t[k.key], path, after)
    assert np.all(np.isfinite(new)), path
    assert not np.array_equal(old, new), f'{jax.tree_util.keystr(path)} did not change'
  assert int(state.step) == 1
  assert np.isfinite(float(metrics['loss'])) and 0 <= float(metrics['accuracy']) <= 1


@pytest.mark.parametrize('preset', ['fast', 'best'])
def test_the_loop_starts_from_the_public_initial_state_bitwise(preset):
  # The loop's initial state is compiled with other XLA options (training._training_initial_state);
  # a resumed or rebuilt run must not depend on which of the two built it.
  from digitrec_jax.config import PRESETS
  config = PRESETS[preset]
  public = jax.device_get(create_train_state(config))
  loop = jax.device_get(training._training_initial_state(config))
  assert jax.tree.structure(public) == jax.tree.structure(loop)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(public), jax.tree.leaves(loop)):
    assert a.dtype == b.dtype and np.array_equal(a, b), jax.tree_util.keystr(path)


def test_jit_and_no_jit_agree():
  config = TrainConfig(steps=10, warmup_steps=0, model=TINY_MODEL)
  apply_fn, tx = _setup(config)
  step = functools.partial(train_step, apply_fn=apply_fn, tx=tx, config=config)
  s1, m1 = step(create_train_state(config), _batch())
  s2, m2 = jax.jit(step)(create_train_state(config), _batch())
  np.testing.assert_allclose(m1['loss'], m2['loss'], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), s1.params, s2.params)


def test_compile_options_this_jaxlib_does_not_know_are_left_out():
  # XLA's options come and go between jaxlib releases (0.11 dropped xla_cpu_use_fusion_emitters, which made
  # every training run fail there); one the running jaxlib rejects is dropped, the rest are kept.
  options = training.compiler_options(xla_no_such_option_here=True)
  if jax.default_backend() != 'cpu':
    assert options is None
    return
  assert options == {'xla_backend_optimization_level': 1}
  assert not training._known_option('xla_no_such_option_here', True)
  assert training._known_option('xla_backend_optimization_level', 1)
  double = jax.jit(lambda x: 2 * x, compiler_options=options)
  assert float(double(jnp.float32(3))) == 6.0


def test_overfits_a_fixed_batch():
  config = TrainConfig(steps=30, warmup_steps=0, learning_rate=3e-3, model=TINY_MODEL)
  apply_fn, tx = _setup(config)
  step = jax.jit(functools.partial(train_step, apply_fn=apply_fn, tx=tx, config=config), donate_argnums=0)
  state, batch, losses = create_train_state(config), _batch(16), []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  assert losses[-1] < losses[0] / 2, losses


def test_batches_are_a_pure_function_of_seed_and_step():
  config = TrainConfig(steps=10, model=TINY_MODEL)
  state = create_train_state(config)
  n, batch_size = 100, 30  # 3 steps per epoch; 10 examples dropped each epoch.
  data = {'image': jnp.arange(n), 'label': jnp.arange(n)}
  per_epoch = training.steps_per_epoch(n, batch_size)

  def batch_at(step, first_epoch):
    orders = training.epoch_orders(state, jnp.int32(first_epoch), n)
    return np.asarray(training.get_batch(data, orders, jnp.int32(first_epoch), jnp.int32(step), batch_size)['label'])

  # The same step gives the same batch whichever window of epoch orders it is read from.
  np.testing.assert_array_equal(batch_at(4, 1), batch_at(4, 0))
  for epoch in range(3):
    seen = np.concatenate([batch_at(epoch * per_epoch + i, epoch) for i in range(per_epoch)])
    assert len(set(seen.tolist())) == per_epoch * batch_size  # No example twice in an epoch.
  assert not np.array_equal(batch_at(0, 0), batch_at(per_epoch, 0))  # Reshuffled each epoch.
  other = create_train_state(dataclasses.replace(config, seed=1))
  orders = training.epoch_orders(other, jnp.int32(0), n)
  assert not np.array_equal(batch_at(0, 0), np.asarray(orders[:batch_size]))


def test_evaluation_is_exact_with_a_partial_last_batch():
  config = TrainConfig(steps=10, model=TINY_MODEL)
  apply_fn, _ = _setup(config)
  params = _variables(create_train_state(config))
  images, labels = synthetic_digits(25, 3)
  batches = data_lib.make_eval_batches(images, labels.astype(np.int32), 10)
  assert batches['image'].shape == (3, 10, 28, 28, 1)
  result = training.evaluate(apply_fn, params, jax.tree.map(jnp.asarray, batches))
  logits = np.asarray(apply_fn(params, jnp.asarray(images)), np.float64)
  log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
  assert result['test_count'] == 25
  assert result['test_accuracy'] == pytest.approx(np.mean(logits.argmax(1) == labels), abs=1e-9)
  assert result['test_loss'] == pytest.approx(-np.mean(log_probs[np.arange(25), labels]), rel=1e-5)


def test_train_and_evaluate_on_fake_mnist(tiny_config, run_options, tmp_path):
  config = dataclasses.replace(tiny_config, steps=24, eval_every=12, learning_rate=1e-2)
  summary = train_and_evaluate(config, tmp_path / 'run', **{**run_options, 'steps_per_dispatch': 6})
  assert summary['step'] == 24 and summary['device_count'] == jax.device_count()
  assert 0.9 <= summary['test_accuracy'] <= 1.0  # The synthetic classes are easy.
  assert 0 < summary['test_loss'] < 1.0
  assert summary['images_per_second'] > 0
  on_disk = json.loads((tmp_path / 'run' / 'summary.json').read_text())
  assert on_disk['test_accuracy'] == summary['test_accuracy']
  assert TrainConfig.from_dict(on_disk['config']) == config
  assert sorted(p.name for p in (tmp_path / 'run' / 'state').iterdir()) == ['12', '24']
  rows = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows if 'test_accuracy' in r] == [12, 24]
  seconds = [r['seconds'] for r in rows if 'test_accuracy' in r]  # Time-to-accuracy: since training began.
  assert 0 < seconds[0] < seconds[1] <= summary['train_seconds'] + 1
  assert [r['step'] for r in rows if 'train_loss' in r] == [6, 12, 18, 24]


def test_best_is_chosen_on_validation_accuracy_not_on_the_test_set(tiny_config, run_options, tmp_path, monkeypatch):
  # Scripted evaluations in which the two splits disagree: validation peaks at step 2, test at step 3.
  scores = iter([(0.50, 0.70), (0.90, 0.60), (0.80, 0.95)])

  def scripted(logits, labels, prefix='test'):
    if prefix == 'val':
      scripted.current = next(scores)
    return {f'{prefix}_loss': 0.1, f'{prefix}_accuracy': scripted.current[prefix == 'test'], f'{prefix}_count': 10}

  monkeypatch.setattr(training, 'metrics_of', scripted)
  config = dataclasses.replace(tiny_config, steps=3, eval_every=1)
  summary = train_and_evaluate(config, tmp_path / 'run', **run_options)
  assert sorted(p.name for p in (tmp_path / 'run' / 'best').iterdir() if p.name.isdigit()) == ['2']
  assert (summary['best_step'], summary['best_val_accuracy'], summary['best_test_accuracy']) == (2, 0.90, 0.60)
  from digitrec_jax.checkpoint import RunCheckpoints
  checkpoints = RunCheckpoints(tmp_path / 'run')
  try:
    best = checkpoints.best.read_json(2, 'metrics')
    calib = checkpoints.best.read_json(2, 'calibration')
  finally:
    checkpoints.close()
  assert best['val_accuracy'] == 0.90 and best['test_accuracy'] == 0.60
  assert calib['temperature'] > 0 and 0 <= calib['threshold'] <= 0.5


def test_a_run_with_non_digits_and_pen_digits_trains_the_eleventh_class(tiny_config, run_options, tmp_path):
  # The train chunk compiles from shapes predicted before the banks exist (training._train_data_shapes);
  # a wrong prediction fails the run.
  config = dataclasses.replace(tiny_config, steps=3, eval_every=3, non_digit_fraction=0.25, non_digit_bank=64,
                               pen_digit_fraction=0.25, pen_mnist_share=0.5, augment_rotation=10.0,
                               model=dataclasses.replace(tiny_config.model, non_digit_class=True))
  summary = train_and_evaluate(config, tmp_path / 'run', **run_options)
  assert summary['step'] == 3 and summary['best_step'] == 3
  from digitrec_jax import load_variables
  variables, saved, info = load_variables(tmp_path / 'run')
  assert saved == config and info['step'] == 3
  assert variables['params']['Dense_1']['kernel'].shape[-1] == 11
  assert 0 <= info['calibration']['threshold'] <= 1


def test_non_digits_are_mixed_into_each_batch_with_their_label():
  batch = {'image': jnp.zeros((8, 28, 28, 1), jnp.uint8), 'label': jnp.arange(8, dtype=jnp.int32)}
  bank = jnp.full((5, 28, 28, 1), 200, jnp.uint8)
  mixed = training.mix_non_digits(batch, bank, jax.random.key(0), 0.25)
  assert mixed['label'].tolist() == [0, 1, 2, 3, 4, 5, 10, 10]
  assert mixed['image'].shape == (8, 28, 28, 1)
  assert np.all(np.asarray(mixed['image'][6:]) == 200) and np.all(np.asarray(mixed['image'][:6]) == 0)
  assert training.mix_non_digits(batch, bank, jax.random.key(0), 0.0) is batch
  # Pen-drawn digits go just before the non-digits, with their own labels.
  pen = jnp.full((5, 28, 28, 1), 90, jnp.uint8)
  both = training.mix_non_digits(mixed, pen, jax.random.key(1), 0.25, bank_labels=jnp.arange(5, dtype=jnp.int32) + 3,
                                 offset=2)
  assert both['label'][:4].tolist() == [0, 1, 2, 3] and both['label'][6:].tolist() == [10, 10]
  assert set(both['label'][4:6].tolist()) <= {3, 4, 5, 6, 7} and np.all(np.asarray(both['image'][4:6]) == 90)


def test_resume_one_step_then_two_and_a_finished_rerun_changes_nothing(tiny_config, run_options, tmp_path, capsys):
  one = dataclasses.replace(tiny_config, steps=1, eval_every=1)
  options = {**run_options, 'progress': True}
  train_and_evaluate(one, tmp_path / 'run', **options)
  two = dataclasses.replace(one, steps=2)
  summary = train_and_evaluate(two, tmp_path / 'run', **options)
  assert summary['step'] == 2 and summary['resumed_from_step'] == 1
  assert sorted(p.name for p in (tmp_path / 'run' / 'state').iterdir()) == ['1', '2']
  err = capsys.readouterr().out
  assert 'resuming from step 1 (of 2)' in err
  assert 'note: steps changed from 1 to 2: the cosine learning-rate schedule now runs over 2 steps' in err
  before = (tmp_path / 'run' / 'summary.json').read_bytes()
  again = train_and_evaluate(two, tmp_path / 'run', **options)
  assert 'already at step 2; nothing to do' in capsys.readouterr().out
  assert (tmp_path / 'run' / 'summary.json').read_bytes() == before
  assert again == json.loads(before)


def test_resume_refuses_changed_settings(tiny_config, run_options, tmp_path):
  config = dataclasses.replace(tiny_config, steps=1, eval_every=1)
  train_and_evaluate(config, tmp_path / 'run', **run_options)
  with pytest.raises(training.RunDirError) as e:
    # cpu_devices is how the run is laid out, not its recipe: a change of it alone is no reason to refuse.
    train_and_evaluate(dataclasses.replace(config, steps=2, seed=7, learning_rate=0.01, cpu_devices=2), tmp_path / 'run',
                       **run_options)
  assert str(e.value) == (f'{tmp_path}/run/state/1 was trained with other settings (learning_rate 0.003 -> 0.01, '
                          'seed 0 -> 7); resume with the same settings, or start a new run dir')
  assert sorted(p.name for p in (tmp_path / 'run' / 'state').iterdir()) == ['1']


def test_metrics_log_drops_a_torn_last_line_and_keeps_rows_up_to_the_step(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  path.write_text('{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n{"step": 3, "a": 3}\n{"step": 4, "a"')
  log = training.MetricsLog(path, enabled=True)
  assert log.truncate_after(2) == f'dropped the torn last line of {path}'
  assert path.read_text() == '{"step": 1, "a": 1}\n{"step": 2, "a": 2}\n'
  path.write_text('{"step": 1}\ngarbage\n{"step": 2}\n')
  with pytest.raises(training.RunDirError, match=r'line 2 is not a metrics row \(JSONDecodeError\); fix or delete'):
    log.truncate_after(2)
  assert path.read_text() == '{"step": 1}\ngarbage\n{"step": 2}\n'  # Untouched.


def test_a_fresh_run_refuses_a_dir_with_results_but_no_checkpoint(tiny_config, run_options, tmp_path):
  (tmp_path / 'run').mkdir()
  (tmp_path / 'run' / 'summary.json').write_text('{"keep": true}')
  with pytest.raises(training.RunDirError, match='holds summary.json but no checkpoint to resume from; start a new '
                                                 'run dir, or delete it$'):
    train_and_evaluate(tiny_config, tmp_path / 'run', **run_options)
  assert (tmp_path / 'run' / 'summary.json').read_text() == '{"keep": true}'


def test_optimizer_state_holds_the_weights_only():
  config = TrainConfig(steps=10, model=dataclasses.replace(TINY_MODEL, batch_norm=True))
  state = create_train_state(config)
  assert jax.tree.structure(state.opt_state[0].mu) == jax.tree.structure(state.params)
  assert sorted(state.batch_stats) == ['BatchNorm_0', 'BatchNorm_1', 'BatchNorm_2']
  assert 'batch_stats' not in str(jax.tree.structure(state.opt_state))


def _saved_state(run_dir, step, config):
  from digitrec_jax.checkpoint import STATE, Checkpoints
  ckpts = Checkpoints(run_dir, STATE)
  try:
    return jax.device_get(ckpts.restore(step, 'state', jax.eval_shape(lambda: create_train_state(config))))
  finally:
    ckpts.close()


def _saved_params(run_dir, step, config):
  return _saved_state(run_dir, step, config).params


def _best_params_are_the_ema(run_dir, config):
  """The inference variables of a run (its best checkpoint), checked equal to the EMA of its state."""
  from digitrec_jax.predict import load_variables
  variables, _, info = load_variables(run_dir)
  state = _saved_state(run_dir, info['step'], config)
  jax.tree.map(np.testing.assert_array_equal, variables, state.ema)
  return variables, state


@pytest.mark.skipif(jax.default_backend() == 'gpu'
                    and '--xla_gpu_deterministic_ops=true' not in os.environ.get('XLA_FLAGS', ''),
                    reason="a GPU's autotuned convolutions and atomic reductions differ in the last bits from run to "
                    'run unless XLA_FLAGS=--xla_gpu_deterministic_ops=true')
def test_rerun_after_a_crash_is_bitwise_identical(tiny_config, run_options, tmp_path):
  import shutil
  config = dataclasses.replace(tiny_config, steps=4, eval_every=2)
  options = {**run_options, 'steps_per_dispatch': 2}
  train_and_evaluate(config, tmp_path / 'straight', **options)
  shutil.copytree(tmp_path / 'straight', tmp_path / 'crashed')
  shutil.rmtree(tmp_path / 'crashed' / 'state' / '4')  # As if killed after the step-2 save.
  (tmp_path / 'crashed' / 'summary.json').unlink()
  summary = train_and_evaluate(config, tmp_path / 'crashed', **options)
  assert summary['resumed_from_step'] == 2
  jax.tree.map(np.testing.assert_array_equal, _saved_params(tmp_path / 'crashed', 4, config),
               _saved_params(tmp_path / 'straight', 4, config))


def test_non_finite_loss_stops_training_without_saving(tiny_config, run_options, tmp_path):
  config = dataclasses.replace(tiny_config, learning_rate=1e30, warmup_steps=0)
  with pytest.raises(FloatingPointError, match=r'^training loss became nan at step \d+; the state was not '
                                               r'saved; lower the learning rate'):
    train_and_evaluate(config, tmp_path / 'run', **run_options)
  assert not list((tmp_path / 'run' / 'state').iterdir())


def test_a_non_finite_last_update_before_an_evaluation_is_never_saved(tiny_config, run_options, tmp_path):
  # The loss of a step is computed before its update, so only the evaluation sees the last update's overflow:
  # Adam's steps of about 1e37 keep the weights finite, but the logits overflow.
  config = dataclasses.replace(tiny_config, steps=1, eval_every=1, learning_rate=1e37, warmup_steps=0)
  with pytest.raises(FloatingPointError, match=r'^the (weights are not finite|validation loss is (nan|inf)) at step 1; '
                                               r'the state was not saved'):
    train_and_evaluate(config, tmp_path / 'run', **run_options)
  assert not list((tmp_path / 'run' / 'state').iterdir()) and not (tmp_path / 'run' / 'summary.json').exists()


def test_ema_follows_params_with_warmed_up_decay():
  config = TrainConfig(steps=10, warmup_steps=0, ema_decay=0.99, model=TINY_MODEL)
  apply_fn, tx = _setup(config)
  state = create_train_state(config)
  init = jax.device_get(_variables(state))
  np.testing.assert_array_equal(jax.tree.leaves(state.ema)[0], jax.tree.leaves(init)[0])
  step = jax.jit(functools.partial(train_step, apply_fn=apply_fn, tx=tx, config=config))
  state1, _ = step(state, _batch())
  # Step 0 uses decay min(0.99, 1/10) = 0.1; step 1 uses min(0.99, 2/11).
  expected = jax.tree.map(lambda e, p: 0.1 * e + 0.9 * p, init, jax.device_get(_variables(state1)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), state1.ema, expected)
  state2, _ = step(state1, _batch(seed=1))
  d = 2 / 11
  expected = jax.tree.map(lambda e, p: d * e + (1 - d) * p, jax.device_get(state1.ema),
                          jax.device_get(_variables(state2)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), state2.ema, expected)
  assert training.eval_variables(state2) is state2.ema
  plain = create_train_state(dataclasses.replace(config, ema_decay=0.0))
  assert plain.ema is None
  assert training.eval_variables(plain) == {'params': plain.params, 'batch_stats': plain.batch_stats}


def test_ema_state_and_config_must_agree():
  config = TrainConfig(steps=10, ema_decay=0.9, model=TINY_MODEL)
  apply_fn, tx = _setup(config)
  with pytest.raises(ValueError, match='^the state has EMA weights but config.ema_decay is 0, or the reverse'):
    train_step(create_train_state(config), _batch(), apply_fn=apply_fn, tx=tx,
               config=dataclasses.replace(config, ema_decay=0.0))


def test_augmentation_changes_the_step_and_is_keyed_by_seed_and_step():
  base = TrainConfig(steps=10, warmup_steps=0, model=TINY_MODEL)
  aug = dataclasses.replace(base, augment_rotation=20.0, augment_shift=3.0, augment_stroke=0.5)
  apply_fn, tx = _setup(base)
  run = lambda config: jax.device_get(
      jax.jit(functools.partial(train_step, apply_fn=apply_fn, tx=tx, config=config))(
          create_train_state(config), _batch())[1]['loss'])
  assert run(aug) == run(aug)
  assert run(aug) != run(base)


def test_augment_share_changes_that_share_and_passes_the_rest_unchanged():
  from digitrec_jax import training
  images = synthetic_digits(200, seed=5)[0]
  labels = jnp.zeros(200, jnp.int32)
  full = TrainConfig(augment_rotation=20.0, augment_elastic=1.0, augment_stroke=0.5)
  half = dataclasses.replace(full, augment_share=0.5)
  key = jax.random.key(11)
  out = np.asarray(jax.jit(functools.partial(training.augment, half))(key, images, labels))
  assert out.shape == images.shape and out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0
  plain = np.asarray(images, np.float32) / 255.0
  unchanged = np.all(np.abs(out - plain) < 1e-6, axis=(1, 2, 3))
  assert 70 <= unchanged.sum() <= 130  # About half, drawn per image.
  # The changed ones are exactly what every image gets at share 1 with the same key.
  everything = np.asarray(jax.jit(functools.partial(training.augment, full))(key, images, labels))
  np.testing.assert_allclose(out[~unchanged], everything[~unchanged], atol=1e-5)
  assert not np.any(np.all(np.abs(everything - plain) < 1e-6, axis=(1, 2, 3)))
  np.testing.assert_array_equal(out, jax.jit(functools.partial(training.augment, half))(key, images, labels))
  with pytest.raises(ValueError, match='augment_share must be in'):
    TrainConfig(augment_share=0.0)


def test_training_with_ema_saves_the_ema_weights_as_best(tiny_config, run_options, tmp_path):
  config = dataclasses.replace(tiny_config, ema_decay=0.9, augment_rotation=5.0, augment_stroke=0.3)
  train_and_evaluate(config, tmp_path / 'run', **run_options)
  _, state = _best_params_are_the_ema(tmp_path / 'run', config)
  assert not np.array_equal(jax.tree.leaves(state.ema['params'])[0], jax.tree.leaves(state.params)[0])


def test_batch_norm_statistics_come_from_the_forward_pass_not_the_optimizer():
  model = dataclasses.replace(TINY_MODEL, batch_norm=True)
  config = TrainConfig(steps=10, warmup_steps=0, weight_decay=0.1, model=model)
  apply_fn, tx = _setup(config)
  state = create_train_state(config)
  init = jax.device_get(_variables(state))
  batch = _batch()
  step_key = jax.random.fold_in(jax.random.split(jax.random.wrap_key_data(state.rng))[0], 0)
  _, trained = apply_fn.train(init, batch['image'], jax.random.split(step_key)[0])
  state1, metrics = jax.jit(functools.partial(train_step, apply_fn=apply_fn, tx=tx, config=config))(state, batch)
  assert np.isfinite(metrics['loss'])
  # The statistics are exactly this batch's running averages; weight decay and Adam never see them.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), state1.batch_stats, trained)
  for before, after in zip(jax.tree.leaves(init['params']), jax.tree.leaves(state1.params)):
    assert not np.array_equal(before, after)


def test_batch_norm_statistics_are_checkpointed_with_the_shipped_weights(tiny_config, run_options, tmp_path):
  from digitrec_jax.predict import load_predictor
  config = dataclasses.replace(tiny_config, ema_decay=0.9, model=dataclasses.replace(TINY_MODEL, batch_norm=True))
  train_and_evaluate(config, tmp_path / 'run', **run_options)
  params, _ = _best_params_are_the_ema(tmp_path / 'run', config)
  assert sorted(params) == ['batch_stats', 'params']
  assert float(jnp.abs(params['batch_stats']['BatchNorm_0']['mean']).max()) > 0  # Trained, not initial.
  images = np.asarray(_batch(8)['image'], np.float32) / 255
  predictor = load_predictor(tmp_path / 'run')
  assert predictor.temperature != 1.0  # Fitted on the validation split when the best checkpoint was saved.
  logits = make_apply_fn(CNN.from_config(config.model))(params, images)
  expected = jax.nn.softmax(logits / predictor.temperature, axis=-1)
  np.testing.assert_allclose(predictor.predict_proba(images), expected, rtol=1e-5, atol=1e-6)


def test_augment_blur_softens_every_digit_after_the_share_and_leaves_non_digits():
  from digitrec_jax import training
  images = synthetic_digits(64, seed=6)[0]
  labels = jnp.asarray([10] * 16 + [4] * 48, jnp.int32)
  half = TrainConfig(augment_rotation=20.0, augment_share=0.5)
  blurred = dataclasses.replace(half, augment_blur=0.75)
  key = jax.random.key(12)
  base = np.asarray(jax.jit(functools.partial(training.augment, half))(key, images, labels))
  out = np.asarray(jax.jit(functools.partial(training.augment, blurred))(key, images, labels))
  np.testing.assert_array_equal(out[:16], base[:16])  # Non-digits: exactly what the share gave them.
  softened = np.any(np.abs(out[16:] - base[16:]) > 1e-3, axis=(1, 2, 3))
  assert softened.sum() >= 40  # Every digit, changed by the share or not, up to a tiny drawn blend.
  np.testing.assert_allclose(out.sum((1, 2, 3)), base.sum((1, 2, 3)), rtol=0.02)
