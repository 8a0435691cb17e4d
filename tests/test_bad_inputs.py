"""The rows of docs/errors.md not covered next to their modules: one line, non-zero exit, nothing lost."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import step_dir as _step_dir
from helpers import truncate_arrays as _truncate_arrays

from digitrec_jax import DataError, load_mnist, load_predictor, load_variables, train
from digitrec_jax import predict as predict_lib

ROOT = Path(__file__).resolve().parents[1]
HOW = predict_lib.CHECKPOINT_FIX
PRETRAINED_DIR = predict_lib.pretrained_dir()


@pytest.fixture
def shipped_copy(tmp_path):
  return Path(shutil.copytree(PRETRAINED_DIR, tmp_path / 'copy'))


def _predict_error(args, capsys) -> str:
  assert predict_lib.main(args) == 1
  err = capsys.readouterr().err
  assert err.count('\n') == 1
  return err.strip()


def test_predict_with_an_empty_checkpoint_dir(tmp_path, capsys):
  (tmp_path / 'empty').mkdir()
  assert _predict_error(['x.png', '--checkpoint', str(tmp_path / 'empty')], capsys) == (
      f'error: no checkpoint in {tmp_path / "empty"}; {HOW}')


@pytest.mark.slow
def test_checkpoint_with_truncated_array_files(shipped_copy, tmp_path):
  import subprocess
  _truncate_arrays(shipped_copy)
  Image.new('L', (28, 28), 255).save(tmp_path / 'x.png')
  out = subprocess.run([sys.executable, '-m', 'digitrec_jax.predict', str(tmp_path / 'x.png'), '--checkpoint',
                        str(shipped_copy)], capture_output=True, text=True, timeout=300)
  assert out.returncode == 1
  # Exactly one line: the damage is found before any array read starts, so none is left in flight.
  assert re.fullmatch(rf'error: checkpoint {_step_dir(shipped_copy)} is damaged: variables/\S+ has 10 bytes, '
                      rf'expected [\d,]+; {re.escape(HOW)}\n', out.stderr), out.stderr


def test_checkpoint_with_missing_metadata(shipped_copy, capsys):
  (_step_dir(shipped_copy) / 'variables' / '_METADATA').unlink()
  assert _predict_error(['x.png', '--checkpoint', str(shipped_copy)], capsys) == (
      f'error: checkpoint {_step_dir(shipped_copy)} is damaged: variables/_METADATA is missing; {HOW}')


def test_checkpoint_of_a_different_model_config(shipped_copy, capsys):
  config_file = _step_dir(shipped_copy) / 'config' / 'metadata'
  config = json.loads(config_file.read_text())
  config['model']['dense_features'] = 128
  config_file.write_text(json.dumps(config))
  assert _predict_error(['x.png', '--checkpoint', str(shipped_copy)], capsys) == (
      f'error: checkpoint {_step_dir(shipped_copy)} was changed after it was saved: config/metadata differs; {HOW}')


def test_train_checkpoint_dir_that_is_a_file(tmp_path, capsys):
  (tmp_path / 'file').write_text('keep me')
  assert train.main(['--steps', '1', '--checkpoint-dir', str(tmp_path / 'file')]) == 1
  assert capsys.readouterr().err == f'error: run dir {tmp_path / "file"} is a file; pass another --checkpoint-dir\n'
  assert (tmp_path / 'file').read_text() == 'keep me'


def test_train_refuses_the_shipped_checkpoint_and_its_insides(capsys):
  before = sorted(str(p) for p in PRETRAINED_DIR.rglob('*'))
  root = PRETRAINED_DIR.absolute()
  for target in (root, root / 'best', _step_dir(root)):
    assert train.main(['--steps', '1', '--checkpoint-dir', str(target)]) == 1
    assert capsys.readouterr().err == (f'error: {target} is inside the params-only (shipped or exported) '
                                       f'checkpoint {root}; pass another --checkpoint-dir\n')
  assert sorted(str(p) for p in PRETRAINED_DIR.rglob('*')) == before


def test_empty_data_dir_names_all_four_files(tmp_path, capsys):
  (tmp_path / 'data').mkdir()
  assert train.main(['--steps', '1', '--data-dir', str(tmp_path / 'data'), '--checkpoint-dir',
                     str(tmp_path / 'run')]) == 1
  assert capsys.readouterr().err == (
      f'error: data dir {tmp_path / "data"} lacks train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz; '
      'pass --data-dir DIR (or set DIGITREC_DATA_DIR=DIR) where DIR holds train-images-idx3-ubyte.gz, '
      'train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz\n')
  assert not (tmp_path / 'run' / 'state').exists() or not any((tmp_path / 'run' / 'state').iterdir())


@pytest.mark.slow
def test_truncated_canonical_file_fails_its_checksum(tmp_path, real_data_dir):
  folder = tmp_path / 'data'
  folder.mkdir()
  for name in ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'):
    shutil.copy(Path(real_data_dir) / name, folder / name)
  path = folder / 't10k-images-idx3-ubyte.gz'
  path.write_bytes(path.read_bytes()[:100_000])
  with pytest.raises(DataError, match='^t10k-images-idx3-ubyte.gz in .* does not match the size and sha256 of'):
    load_mnist('test', str(folder))


def test_corrupt_gzip_is_named(fake_mnist, monkeypatch):
  from helpers import register_checksums
  path = fake_mnist / 't10k-images-idx3-ubyte.gz'
  path.write_bytes(b'\x1f\x8b' + b'garbage' * 10)
  register_checksums(monkeypatch, fake_mnist)
  with pytest.raises(DataError, match=f'^{path} is not a readable gzip file'):
    load_mnist('test', str(fake_mnist))


@pytest.mark.parametrize('name, make', [
    ('one_pixel_white.png', lambda: Image.new('L', (1, 1), 255)),
    ('one_pixel_black.png', lambda: Image.new('L', (1, 1), 0)),
    ('all_black.png', lambda: Image.new('L', (64, 64), 0)),
    ('transparent.png', lambda: Image.new('RGBA', (64, 64), (0, 0, 0, 0))),
])
def test_images_without_a_digit(tmp_path, capsys, name, make):
  make().save(tmp_path / name)
  assert _predict_error([str(tmp_path / name)], capsys) == (
      f'error: {tmp_path / name}: the image is blank: it holds no strokes')


def test_checkpoint_loading_never_unpickles(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError('pickle was used')
  monkeypatch.setattr(pickle, 'loads', refuse)
  monkeypatch.setattr(pickle, 'load', refuse)
  monkeypatch.setattr(pickle, 'Unpickler', refuse)
  variables, config, _ = load_variables()
  assert config.model.dense_features == variables['params']['Dense_0']['kernel'].shape[1]
  probs = load_predictor().predict_proba(np.zeros((1, 28, 28, 1), np.float32))
  assert probs.shape == (1, 10)


def test_no_pickle_or_eval_in_the_code():
  sources = [*ROOT.glob('digitrec_jax/*.py'), ROOT / 'train.py', ROOT / 'gui.py']
  assert len(sources) > 10
  for path in sources:
    text = path.read_text()
    for word in ('import pickle', 'eval(', 'exec(', 'allow_pickle=True'):
      assert word not in text, f'{path.name} uses {word}'


def test_resume_from_a_damaged_state_names_the_step(tiny_config, run_options, tmp_path):
  import dataclasses

  from digitrec_jax import CheckpointError, train_and_evaluate
  config = dataclasses.replace(tiny_config, steps=2, eval_every=2)
  train_and_evaluate(config, tmp_path / 'run', **run_options)
  shutil.rmtree(tmp_path / 'run' / 'state' / '2' / 'state')
  with pytest.raises(CheckpointError, match=rf'^checkpoint {tmp_path}/run/state/2 is damaged: state/\S+ is missing$'):
    train_and_evaluate(dataclasses.replace(config, steps=4), tmp_path / 'run', **run_options)


def test_a_run_dir_whose_summary_is_a_folder_is_refused_before_training(tiny_config, run_options, tmp_path):
  from digitrec_jax import train_and_evaluate
  from digitrec_jax.training import RunDirError
  (tmp_path / 'run' / 'summary.json').mkdir(parents=True)
  with pytest.raises(RunDirError, match=rf'^{tmp_path / "run" / "summary.json"} is not a regular file; move it '
                                        'away, or start a new run dir$'):
    train_and_evaluate(tiny_config, tmp_path / 'run', **run_options)
  assert not [p for p in (tmp_path / 'run' / 'state').iterdir() if p.name.isdigit()]  # Refused before any step.


@pytest.mark.parametrize('item, edit, message', [
    ('config', lambda d: {**d, 'model': None}, r'the config of checkpoint .* is not valid \(model must be a '
                                               r'ModelConfig or a dict of its fields, got None\)'),
    ('metrics', lambda d: {**d, 'test_accuracy': '99%'}, r"the metrics of checkpoint .* hold no test accuracy in "
                                                         r"\[0, 1\] \(got '99%'\)"),
    ('metrics', lambda d: ['garbage'], r'the metrics of checkpoint .* is not a JSON object'),
])
def test_hand_edited_json_with_matching_checksums_is_one_error(tiny_config, run_options, tmp_path, item, edit,
                                                               message):
  import json as json_lib

  from digitrec_jax import CheckpointError, load_variables, train_and_evaluate
  from digitrec_jax.checkpoint import _record_files
  train_and_evaluate(tiny_config, tmp_path / 'run', **run_options)
  step = _step_dir(tmp_path / 'run')
  path = next(p for p in (step / item).iterdir() if p.name != 'commit_success.txt')
  path.write_text(json_lib.dumps(edit(json_lib.loads(path.read_text()))))
  _record_files(step)  # An editor who also fixed files.json: the values themselves are checked.
  with pytest.raises(CheckpointError, match=f'^{message}$'):
    load_variables(tmp_path / 'run')


def test_over_long_and_under_a_file_paths_are_one_line_for_train_export_and_evaluate(tmp_path, capsys):
  from digitrec_jax import evaluate
  from digitrec_jax import export as export_lib
  (tmp_path / 'file').write_text('keep me')
  long = tmp_path / ('n' * 300)
  assert train.main(['--steps', '1', '--checkpoint-dir', str(long)]) == 1
  assert capsys.readouterr().err == f'error: cannot use run dir {long} (File name too long); pass another --checkpoint-dir\n'
  assert train.main(['--steps', '1', '--checkpoint-dir', str(tmp_path / 'file' / 'run')]) == 1
  assert capsys.readouterr().err == (f'error: cannot create run dir {tmp_path / "file" / "run"} (Not a directory); '
                                     'pass another --checkpoint-dir\n')
  for out in (long, tmp_path / 'file' / 'm'):
    assert export_lib.main(['--out', str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'error: cannot use {out} (') and err.count('\n') == 1
  assert evaluate.main(['--out', str(long)]) == 2
  assert capsys.readouterr().err == f'error: cannot use --out {long} (File name too long); pass another --out\n'
  assert (tmp_path / 'file').read_text() == 'keep me'


@pytest.fixture
def full_disk(tmp_path):
  """A 300 KB tmpfs: a disk that fills at the first checkpoint or figure (needs root and mount)."""
  import subprocess
  mount = tmp_path / 'full'
  mount.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=300k', 'tmpfs', str(mount)], capture_output=True).returncode:
    pytest.skip('cannot mount a small tmpfs here (needs root)')
  yield mount
  subprocess.run(['umount', str(mount)], check=True)


def test_a_full_disk_is_one_line_for_train_and_evaluate(tiny_config, run_options, full_disk, tmp_path, capsys):
  from digitrec_jax import CheckpointError, evaluate, train_and_evaluate
  with pytest.raises(CheckpointError, match=rf'^no room for checkpoint {full_disk / "run" / "best" / "3"}: it needs '
                                            r'about [\d.]+ MB and 0\.\d MB are free; free some space$'):
    train_and_evaluate(tiny_config, full_disk / 'run', **run_options)
  train_and_evaluate(tiny_config, tmp_path / 'run', **run_options)  # A real run to evaluate...
  (full_disk / 'filler').write_bytes(b'\0' * (300 * 1024 - 8192))  # ...into a folder with no room left.
  code = evaluate.main(['--checkpoint', str(tmp_path / 'run'), '--data-dir', run_options['data_dir'],
                        '--out', str(full_disk / 'report')])
  err = capsys.readouterr().err
  assert code == 1
  assert err.endswith(' (No space left on device); free space or pass another --out\n') and err.count('\n') == 1


def test_data_files_that_are_folders_or_unreadable_are_named(tmp_path, monkeypatch):
  from digitrec_jax import data as data_lib
  folder = tmp_path / 'mnist'
  folder.mkdir()
  for name in data_lib.FILE_NAMES:
    (folder / name).write_bytes(b'x')
  labels = folder / 't10k-labels-idx1-ubyte.gz'
  labels.unlink()
  labels.mkdir()
  with pytest.raises(DataError, match=rf'^{labels} is not a regular file \(a folder, FIFO or device\); replace it '
                                      'with the canonical file$'):
    load_mnist('test', str(folder))
  labels.rmdir()
  labels.write_bytes(b'x')
  # Root reads every file, so a chmod cannot show it here: the permission check itself is faked.
  real_access = data_lib.os.access
  monkeypatch.setattr(data_lib.os, 'access', lambda p, mode: Path(p) != labels and real_access(p, mode))
  with pytest.raises(DataError, match=rf'^cannot read {labels} \(permission denied\); make them readable$'):
    load_mnist('test', str(folder))


def test_a_read_only_folder_is_one_line_for_train_export_and_evaluate(tiny_config, run_options, tmp_path, capsys):
  import subprocess

  from digitrec_jax import evaluate, train_and_evaluate
  from digitrec_jax import export as export_lib
  ro = tmp_path / 'ro'
  ro.mkdir()
  # Root writes through chmod, so the folder is a read-only mount.
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', str(ro)], capture_output=True).returncode:
    pytest.skip('cannot mount a read-only tmpfs here (needs root)')
  try:
    train_and_evaluate(tiny_config, tmp_path / 'run', **run_options)
    assert train.main(['--steps', '1', '--data-dir', run_options['data_dir'], '--checkpoint-dir', str(ro / 'run')]) == 1
    assert capsys.readouterr().err == (f'error: cannot create run dir {ro / "run"} (Read-only file system); '
                                       'pass another --checkpoint-dir\n')
    assert export_lib.main(['--checkpoint', str(tmp_path / 'run'), '--out', str(ro / 'm')]) == 1
    assert capsys.readouterr().err == f'error: cannot write {ro}/m (Read-only file system); free space or choose another --out\n'
    assert evaluate.main(['--checkpoint', str(tmp_path / 'run'), '--data-dir', run_options['data_dir'],
                          '--out', str(ro / 'report')]) == 1
    assert capsys.readouterr().err == (f'error: cannot create {ro / "report"} (Read-only file system); '
                                       'pass another --out\n')
  finally:
    subprocess.run(['umount', str(ro)], check=True)
