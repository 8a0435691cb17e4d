import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest
from helpers import TINY_MODEL, step_dir, truncate_arrays

from digitrec_jax import CheckpointError, ModelConfig, TrainConfig, create_train_state, load_variables, train_and_evaluate
from digitrec_jax import checkpoint as ckpt_lib
from digitrec_jax.checkpoint import BEST, STATE, Checkpoints, RunCheckpoints
from digitrec_jax.training import RunDirError, eval_variables


def _save_state(run_dir, step, config):
  ckpts = RunCheckpoints(run_dir)
  state = create_train_state(config)
  ckpts.state.save(step, {'state': state}, {'config': config.to_dict()})
  ckpts.close()
  return state


def test_state_round_trip_gives_equal_trees_and_records_its_files(tmp_path):
  config = TrainConfig(model=dataclasses.replace(TINY_MODEL, batch_norm=True), ema_decay=0.9)
  state = _save_state(tmp_path / 'run', 3, config)
  ckpts = Checkpoints(tmp_path / 'run', STATE)
  assert ckpts.latest_step() == 3
  assert TrainConfig.from_dict(ckpts.read_json(3, 'config')) == config
  restored = ckpts.restore(3, 'state', jax.eval_shape(lambda: create_train_state(config)))
  ckpts.close()
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(state))
  files = json.loads((tmp_path / 'run' / 'state' / '3' / 'files.json').read_text())
  assert 'config/metadata' in files and 'state/_METADATA' in files
  assert all(size > 0 and len(digest) == 64 for size, digest in files.values())


def test_load_variables_prefers_best_and_falls_back_to_the_state(tmp_path):
  config = TrainConfig(model=TINY_MODEL)
  state = _save_state(tmp_path / 'run', 5, config)
  variables, restored_config, info = load_variables(tmp_path / 'run')
  assert restored_config == config and info['step'] == 5 and info['path'].endswith('run/state/5')
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(variables), jax.device_get(eval_variables(state)))
  shifted = jax.tree.map(lambda x: x + 1, eval_variables(state))
  ckpts = RunCheckpoints(tmp_path / 'run')
  calibration = {'temperature': 0.8, 'threshold': 0.25}
  ckpts.best.save(4, {'variables': shifted}, {'config': config.to_dict(), 'metrics': {'test_accuracy': 0.5},
                                              'calibration': calibration})
  ckpts.close()
  variables, _, info = load_variables(tmp_path / 'run')
  assert info == {'path': str(tmp_path / 'run' / 'best' / '4'), 'step': 4, 'test_accuracy': 0.5,
                  'calibration': calibration}
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(variables), jax.device_get(shifted))


def test_load_variables_errors(tmp_path):
  with pytest.raises(CheckpointError) as e:
    load_variables(tmp_path / 'missing')
  assert str(e.value) == f'checkpoint dir {tmp_path / "missing"} does not exist'
  (tmp_path / 'file').write_text('x')
  with pytest.raises(CheckpointError) as e:
    load_variables(tmp_path / 'file')
  assert str(e.value) == f'checkpoint dir {tmp_path / "file"} is a file, not a folder'
  (tmp_path / 'empty').mkdir()
  with pytest.raises(CheckpointError) as e:
    load_variables(tmp_path / 'empty')
  assert str(e.value) == f'no checkpoint in {tmp_path / "empty"}'


def test_damaged_checkpoints_are_refused_before_orbax_reads_them(tmp_path):
  config = TrainConfig(model=TINY_MODEL)
  _save_state(tmp_path / 'run', 1, config)
  where = tmp_path / 'run' / 'state' / '1'
  shutil.copytree(tmp_path / 'run', tmp_path / 'cut')
  truncate_arrays(tmp_path / 'cut', STATE)
  with pytest.raises(CheckpointError, match=rf'^checkpoint {tmp_path}/cut/state/1 is damaged: '
                                            r'state/(ocdbt.process_0/)?d/\w+ has 10 bytes, expected [\d,]+$'):
    load_variables(tmp_path / 'cut')
  shutil.rmtree(where / 'state')
  with pytest.raises(CheckpointError, match=rf'^checkpoint {where} is damaged: state/\S+ is missing$'):
    load_variables(tmp_path / 'run')


def test_an_edited_config_is_refused(tmp_path):
  # Max -> avg pooling keeps every shape, so only the recorded checksums can tell.
  _save_state(tmp_path / 'run', 1, TrainConfig(model=TINY_MODEL))
  config_file = tmp_path / 'run' / 'state' / '1' / 'config' / 'metadata'
  config_file.write_text(config_file.read_text().replace('"max"', '"avg"'))
  with pytest.raises(CheckpointError) as e:
    load_variables(tmp_path / 'run')
  assert str(e.value) == (f'checkpoint {tmp_path}/run/state/1 was changed after it was saved: config/metadata '
                          'differs')


def test_another_model_is_named_by_its_first_differing_array(tmp_path):
  _save_state(tmp_path / 'run', 1, TrainConfig(model=TINY_MODEL))
  ckpts = Checkpoints(tmp_path / 'run', STATE)
  other = TrainConfig(model=dataclasses.replace(TINY_MODEL, dense_features=32))
  with pytest.raises(CheckpointError) as e:
    ckpts.restore(1, 'state', jax.eval_shape(lambda: create_train_state(other)))
  ckpts.close()
  assert str(e.value).startswith(f'checkpoint {tmp_path}/run/state/1 holds another model: ')
  assert 'Dense_0/bias has shape [16], expected [32]' in str(e.value)


def test_links_and_fifos_inside_a_checkpoint_are_refused(tmp_path):
  import os
  _save_state(tmp_path / 'run', 1, TrainConfig(model=TINY_MODEL))
  config_file = tmp_path / 'run' / 'state' / '1' / 'config' / 'metadata'
  config_file.unlink()
  config_file.symlink_to('/dev/zero')
  with pytest.raises(CheckpointError, match=r'config/metadata is not a regular file \(a link, FIFO or device\)'):
    load_variables(tmp_path / 'run')
  config_file.unlink()
  os.mkfifo(config_file)
  with pytest.raises(CheckpointError, match=r'config/metadata is not a regular file \(a link, FIFO or device\)'):
    load_variables(tmp_path / 'run')


def test_json_files_are_read_with_a_size_cap_and_from_regular_files_only(tmp_path):
  (tmp_path / 'big.json').write_text('[' + '0,' * ckpt_lib.MAX_JSON_BYTES + '0]')
  with pytest.raises(CheckpointError, match=r'big.json is [\d,]+ bytes, over the 1,048,576-byte limit for JSON$'):
    ckpt_lib.read_json_file(tmp_path / 'big.json')
  (tmp_path / 'dir.json').mkdir()
  with pytest.raises(CheckpointError, match=r'dir.json is not a regular file$'):
    ckpt_lib.read_json_file(tmp_path / 'dir.json')
  (tmp_path / 'bad.json').write_text('{"a": ')
  with pytest.raises(CheckpointError, match=r'bad.json is not valid JSON \('):
    ckpt_lib.read_json_file(tmp_path / 'bad.json')


def test_a_linked_lock_never_touches_its_target(tmp_path):
  (tmp_path / 'victim').write_text('precious\n')
  (tmp_path / 'run').mkdir()
  (tmp_path / 'run' / '.lock').symlink_to(tmp_path / 'victim')
  with pytest.raises(CheckpointError) as e:
    RunCheckpoints(tmp_path / 'run')
  assert str(e.value) == f'{tmp_path}/run/.lock is a symbolic link; remove it'
  assert (tmp_path / 'victim').read_text() == 'precious\n'
  (tmp_path / 'run' / '.lock').unlink()
  (tmp_path / 'run' / '.lock').mkdir()
  with pytest.raises(CheckpointError, match=r'^cannot open .*/run/\.lock \(Is a directory\)$'):
    RunCheckpoints(tmp_path / 'run')


def test_training_refuses_params_only_dirs_and_their_insides(tiny_config, run_options, tmp_path):
  config = dataclasses.replace(tiny_config, steps=1, eval_every=1)
  train_and_evaluate(config, tmp_path / 'run', **run_options)
  shutil.copytree(tmp_path / 'run' / 'best', tmp_path / 'shipped' / 'best')
  for target in (tmp_path / 'shipped', tmp_path / 'shipped' / 'best', step_dir(tmp_path / 'shipped'),
                 step_dir(tmp_path / 'shipped') / 'variables' / 'new'):
    with pytest.raises(CheckpointError, match=r'is inside the params-only \(shipped or exported\) checkpoint '):
      train_and_evaluate(config, target, **run_options)
  assert not (step_dir(tmp_path / 'shipped') / 'variables' / 'new').exists()
  assert not (tmp_path / 'shipped' / 'state').exists()


def test_a_run_named_best_beside_others_is_no_params_only_checkpoint(tiny_config, run_options, tmp_path):
  # runs/best/ is a run like any other: runs/ holds it, but runs/ is no shipped checkpoint, and a run
  # beside it (or a folder beside an empty best/) trains.
  config = dataclasses.replace(tiny_config, steps=1, eval_every=1)
  train_and_evaluate(config, tmp_path / 'runs' / 'best', **run_options)
  summary = train_and_evaluate(config, tmp_path / 'runs' / 'fast', **run_options)
  assert summary['step'] == 1
  assert (tmp_path / 'runs' / 'fast' / 'state').is_dir()
  (tmp_path / 'empty' / 'best').mkdir(parents=True)
  assert train_and_evaluate(config, tmp_path / 'empty' / 'run', **run_options)['step'] == 1


def test_training_refuses_another_model_and_no_resume(tiny_config, run_options, tmp_path):
  config = dataclasses.replace(tiny_config, steps=1, eval_every=1)
  train_and_evaluate(config, tmp_path / 'run', **run_options)
  other = dataclasses.replace(config, steps=2, model=ModelConfig(conv_features=(4,), dense_features=16))
  with pytest.raises(RunDirError, match=r'holds a checkpoint of another model '):
    train_and_evaluate(other, tmp_path / 'run', **run_options)
  with pytest.raises(RunDirError) as e:
    train_and_evaluate(config, tmp_path / 'run', resume=False, **run_options)
  assert str(e.value) == (f'{tmp_path / "run"} already holds checkpoints up to step 1; start a new run dir, '
                          'or resume')
  assert sorted(p.name for p in (tmp_path / 'run' / 'state').iterdir()) == ['1']  # Nothing overwritten.


def test_best_and_state_are_separate_kinds(tmp_path):
  ckpts = RunCheckpoints(tmp_path / 'run')
  assert ckpts.state.directory.name == STATE and ckpts.best.directory.name == BEST
  assert ckpts.best.latest_step() is None
  ckpts.close()


@pytest.mark.parametrize('calibration', [{'temperature': -1.0, 'threshold': 0.2}, {'temperature': 1.0},
                                         {'temperature': 1.0, 'threshold': 'high'}])
def test_a_best_checkpoint_with_an_unusable_calibration_is_refused(tmp_path, calibration):
  config = TrainConfig(model=TINY_MODEL)
  ckpts = RunCheckpoints(tmp_path / 'run')
  ckpts.best.save(1, {'variables': eval_variables(create_train_state(config))},
                  {'config': config.to_dict(), 'metrics': {'test_accuracy': 0.5}, 'calibration': calibration})
  ckpts.close()
  with pytest.raises(CheckpointError, match=rf'^the calibration of checkpoint {tmp_path / "run" / "best" / "1"} is '
                                            r'not a positive temperature and a threshold in \[0, 1\]$'):
    load_variables(tmp_path / 'run')
