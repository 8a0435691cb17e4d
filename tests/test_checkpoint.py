import dataclasses
import shutil

import jax
import numpy as np
import pytest

from conftest import TINY_MODEL
from digitrec_jax import CheckpointError, ModelConfig, TrainConfig, create_train_state, restore_params, train_and_evaluate
from digitrec_jax.checkpoint import RunCheckpoints

HOW = 'train one with `python train.py --checkpoint-dir DIR`'


def test_state_round_trip_gives_equal_trees(tmp_path):
  config = TrainConfig(model=TINY_MODEL)
  state = create_train_state(config)
  ckpts = RunCheckpoints(tmp_path / 'run')
  ckpts.save_state(3, state, config)
  assert ckpts.latest_step() == 3
  assert ckpts.saved_config(3) == config
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  restored = ckpts.restore_state(3, jax.eval_shape(lambda: create_train_state(config)), sharding)
  ckpts.close()
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(state))


def test_restore_params_prefers_best_and_falls_back_to_state(tmp_path):
  config = TrainConfig(model=TINY_MODEL)
  state = create_train_state(config)
  ckpts = RunCheckpoints(tmp_path / 'run')
  ckpts.save_state(5, state, config)
  ckpts.close()
  params, restored_config = restore_params(tmp_path / 'run')
  assert restored_config == config
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params), jax.device_get(state.params))
  shifted = jax.tree.map(lambda x: x + 1, state.params)
  ckpts = RunCheckpoints(tmp_path / 'run')
  ckpts.save_best(4, shifted, config, {'test_accuracy': 0.5})
  ckpts.close()
  params, _ = restore_params(tmp_path / 'run')
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params), jax.device_get(shifted))


def test_restore_params_errors(tmp_path):
  with pytest.raises(CheckpointError) as e:
    restore_params(tmp_path / 'missing')
  assert str(e.value) == f'checkpoint dir {tmp_path / "missing"} does not exist; {HOW}'
  (tmp_path / 'file').write_text('x')
  with pytest.raises(CheckpointError) as e:
    restore_params(tmp_path / 'file')
  assert str(e.value) == f'checkpoint dir {tmp_path / "file"} is a file, not a folder; {HOW}'
  (tmp_path / 'empty').mkdir()
  with pytest.raises(CheckpointError) as e:
    restore_params(tmp_path / 'empty')
  assert str(e.value) == f'no checkpoint in {tmp_path / "empty"}; {HOW}'


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
  config = TrainConfig(model=TINY_MODEL)
  ckpts = RunCheckpoints(tmp_path / 'run')
  ckpts.save_state(1, create_train_state(config), config)
  ckpts.close()
  shutil.rmtree(tmp_path / 'run' / 'state' / '1' / 'state')
  with pytest.raises(CheckpointError, match=r'^cannot restore .*state/1 \(\w+\); the checkpoint is corrupt '
                                            r'or from another model: train one with'):
    restore_params(tmp_path / 'run')


def test_training_refuses_a_params_only_dir_another_model_and_no_resume(tiny_config, tmp_path):
  (tmp_path / 'shipped' / 'best').mkdir(parents=True)
  with pytest.raises(CheckpointError, match='holds a params-only .* checkpoint; train into another --checkpoint-dir'):
    train_and_evaluate(tiny_config, tmp_path / 'shipped', progress=False)
  config = dataclasses.replace(tiny_config, steps=1, eval_every=1, steps_per_dispatch=1)
  train_and_evaluate(config, tmp_path / 'run', progress=False)
  other = dataclasses.replace(config, steps=2, model=ModelConfig(conv_features=(4,), dense_features=16))
  with pytest.raises(CheckpointError, match=r'holds a checkpoint of another model .*; pass a new --checkpoint-dir'):
    train_and_evaluate(other, tmp_path / 'run', progress=False)
  with pytest.raises(CheckpointError) as e:
    train_and_evaluate(config, tmp_path / 'run', resume=False, progress=False)
  assert str(e.value) == (f'{tmp_path / "run"} already holds checkpoints up to step 1; pass a new '
                          '--checkpoint-dir to start afresh, or drop --no-resume')
  assert sorted(p.name for p in (tmp_path / 'run' / 'state').iterdir()) == ['1']  # Nothing overwritten.
