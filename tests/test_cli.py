import json

import pytest

from digitrec_jax import train


def test_main_trains_and_returns_zero(fake_mnist, tmp_path, capsys, monkeypatch):
  import dataclasses

  from digitrec_jax import config as config_lib
  # The fake MNIST has 512 training images: a validation split of 64 leaves room to train.
  monkeypatch.setitem(config_lib.PRESETS, 'default', dataclasses.replace(config_lib.PRESETS['default'], val_size=64))
  argv = ['--steps', '4', '--batch-size', '32', '--eval-every', '2', '--seed', '3',
          '--data-dir', str(fake_mnist), '--checkpoint-dir', str(tmp_path / 'run')]
  assert train.main(argv) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert [line.split(':')[0] for line in lines] == ['step 2', 'step 4', 'step 4']
  assert lines[-1].startswith('step 4: test accuracy ') and lines[-1].endswith(f'{tmp_path / "run"}/summary.json')
  summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
  assert summary['step'] == 4 and summary['config']['seed'] == 3 and summary['config']['batch_size'] == 32


@pytest.mark.parametrize('flag, value, message', [
    ('--steps', '0', "argument --steps: expected a positive integer, got '0'"),
    ('--steps', '-5', "argument --steps: expected a positive integer, got '-5'"),
    ('--steps', 'abc', "argument --steps: expected a positive integer, got 'abc'"),
    ('--batch-size', '0', "argument --batch-size: expected an integer from 1 to 60,000, got '0'"),
    ('--learning-rate', '-0.1', "argument --learning-rate: expected a positive number, got '-0.1'"),
    ('--eval-every', 'x', "argument --eval-every: expected a positive integer, got 'x'"),
    ('--batch-size', '60001', "argument --batch-size: expected an integer from 1 to 60,000, got '60001'"),
    ('--batch-size', str(10**9), "argument --batch-size: expected an integer from 1 to 60,000, got '1000000000'"),
    ('--seed', str(2**63), f"argument --seed: expected an integer from 0 to 4,294,967,295, got '{2**63}'"),
    ('--seed', '-1', "argument --seed: expected an integer from 0 to 4,294,967,295, got '-1'"),
    ('--bogus', '1', 'unrecognized arguments: --bogus 1'),
])
def test_bad_flags_exit_2_with_a_message(flag, value, message, capsys):
  with pytest.raises(SystemExit) as e:
    train.main([flag, value])
  assert e.value.code == 2
  assert capsys.readouterr().err.strip().splitlines()[-1] == f'digitrec-train: error: {message}'


def test_missing_data_dir_is_one_line_and_exit_1(tmp_path, capsys):
  code = train.main(['--steps', '1', '--data-dir', str(tmp_path / 'nope'), '--checkpoint-dir', str(tmp_path / 'run')])
  err = capsys.readouterr().err
  assert code == 1
  assert err.count('\n') == 1
  assert err.startswith(f'error: data dir {tmp_path / "nope"} does not exist or is not a folder; pass --data-dir')


def test_preset_sets_defaults_and_flags_override(fake_mnist, tmp_path, monkeypatch, capsys):
  import dataclasses

  from digitrec_jax import config as config_lib
  from helpers import TINY_MODEL
  monkeypatch.setitem(config_lib.PRESETS, 'tiny', config_lib.TrainConfig(
      steps=4, batch_size=32, eval_every=4, warmup_steps=1, learning_rate=0.01,
      label_smoothing=0.1, val_size=64, model=TINY_MODEL))
  monkeypatch.chdir(tmp_path)
  assert train.main(['--preset', 'tiny', '--seed', '5', '--data-dir', str(fake_mnist)]) == 0
  summary = json.loads((tmp_path / 'checkpoints' / 'tiny' / 'summary.json').read_text())
  expected = dataclasses.replace(config_lib.PRESETS['tiny'], seed=5)
  assert summary['config'] == json.loads(expected.to_json())


def test_unknown_preset_exits_2(capsys):
  with pytest.raises(SystemExit) as e:
    train.main(['--preset', 'nope'])
  assert e.value.code == 2
  assert "argument --preset: invalid choice: 'nope'" in capsys.readouterr().err


def test_ctrl_c_during_the_imports_is_one_line_and_exit_130(tmp_path):
  import subprocess
  import sys
  # Ctrl-C arriving while `train` imports its heavy modules, made deterministic by an import hook.
  code = '''
import builtins, sys
real_import = builtins.__import__
def hook(name, *args, **kwargs):
  if name == 'digitrec_jax.training':
    raise KeyboardInterrupt
  return real_import(name, *args, **kwargs)
builtins.__import__ = hook
sys.argv = ['digitrec-train', '--steps', '1', '--checkpoint-dir', sys.argv[1]]
from digitrec_jax.train import run
run()
'''
  out = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'run')], capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 130
  assert out.stderr == 'interrupted before training started; nothing was written\n'
  assert not (tmp_path / 'run').exists()


def test_the_entry_point_splits_the_cpu_for_the_recipe_and_a_caller_keeps_its_devices(monkeypatch, tmp_path):
  from digitrec_jax import training
  split, trained = [], []
  monkeypatch.setattr(train, 'split_cpu', split.append)
  monkeypatch.setattr(training, 'train_and_evaluate', lambda config, *a, **k: trained.append(config) or {
      'step': 1, 'test_accuracy': 0.5, 'test_loss': 1.0, 'train_seconds': 1.0, 'images_per_second': 1.0,
      'device_count': 2, 'device_kind': 'cpu', 'checkpoint_dir': str(tmp_path)})
  argv = ['--preset', 'best', '--steps', '1', '--checkpoint-dir', str(tmp_path / 'run')]
  assert train.main(argv, fresh_process=True) == 0
  assert [c.cpu_devices for c in split] == [2] and split[0] is trained[0]
  assert train.main(argv) == 0
  assert len(split) == 1 and len(trained) == 2


def _devices_after_split(config_expr: str, **env) -> int:
  import os
  import subprocess
  import sys
  code = ('from digitrec_jax.config import PRESETS, TrainConfig\n'
          'from digitrec_jax.train import split_cpu\n'
          f'split_cpu({config_expr})\n'
          'import jax\n'
          'print(jax.device_count())\n')
  clean = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_NUM_CPU_DEVICES')}
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                       env={**clean, 'JAX_PLATFORMS': 'cpu', **env})
  assert out.returncode == 0, out.stderr
  return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(__import__('os').cpu_count() < 2, reason='needs 2 cores')
def test_split_cpu_gives_the_recipe_its_devices_unless_the_user_or_the_batch_says_otherwise():
  assert _devices_after_split("PRESETS['best']") == 2
  assert _devices_after_split("PRESETS['fast']") == 1
  # A count that does not divide the batch would leave devices with unequal shares: one device instead.
  assert _devices_after_split('TrainConfig(batch_size=127, cpu_devices=2)') == 1
  assert _devices_after_split("PRESETS['best']", JAX_NUM_CPU_DEVICES='1') == 1
  assert _devices_after_split("PRESETS['fast']", XLA_FLAGS='--xla_force_host_platform_device_count=3') == 3
