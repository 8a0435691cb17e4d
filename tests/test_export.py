import json
import subprocess
import sys

import os

import jax
import numpy as np
import pytest
from helpers import tiny_predictor

from digitrec_jax import load_model, load_predictor
from digitrec_jax import export as export_lib
from digitrec_jax.predict import CHECKPOINT_FIX, input_saliency

_SERVE = r'''
import sys, jax, numpy as np
exported = jax.export.deserialize(bytearray(open(sys.argv[1], 'rb').read()))
images = np.load(sys.argv[2])
digits, probs, scores = exported.call(images)
np.save(sys.argv[3], np.asarray(probs))
np.save(sys.argv[3].replace('.npy', '_digits.npy'), np.asarray(digits))
assert 'flax' not in sys.modules and 'digitrec_jax' not in sys.modules and 'optax' not in sys.modules
'''


def test_export_of_a_tiny_model_matches_its_predictor():
  # A temperature and a threshold that reject some of these random images: the artifact decides as the
  # predictor does.
  calibration = {'temperature': 0.7, 'threshold': 0.3}
  predictor = tiny_predictor(seed=3, calibration=calibration)
  # For the backend the test runs on (cpu here, cuda on a GPU machine): a cpu-only export cannot run on a GPU.
  exported = export_lib.export_predict(predictor.variables, predictor.apply_fn, calibration,
                                       platforms=(jax.export.default_export_platform(),))
  images = np.random.default_rng(2).random((64, 28, 28, 1), np.float32)
  expected = predictor.classify(images)
  assert 0 < np.sum(expected.digits == -1) < 64
  for got, want in zip(exported.call(images), expected):
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)
  restored = jax.export.deserialize(exported.serialize())
  np.testing.assert_array_equal(np.asarray(restored.call(images[:2])[0]), expected.digits[:2])


@pytest.mark.slow
def test_cli_artifact_round_trips_in_a_process_without_flax(tmp_path, capsys):
  out = tmp_path / 'model.jax'
  assert export_lib.main(['--out', str(out)]) == 0
  assert capsys.readouterr().out.startswith(f'wrote {out} (')
  spec = json.loads((tmp_path / 'model.jax.json').read_text())
  assert spec['input'] == {'shape': ['b', 28, 28, 1], 'dtype': 'float32', 'meaning': spec['input']['meaning']}
  assert [o['shape'] for o in spec['output']] == [['b'], ['b', 10], ['b']]
  assert spec['platforms'] == ['cpu', 'cuda', 'tpu']
  assert 0.99 < spec['test_accuracy'] <= 1.0
  images = np.random.default_rng(0).random((7, 28, 28, 1), np.float32)
  np.save(tmp_path / 'x.npy', images)
  subprocess.run([sys.executable, '-c', _SERVE, str(out), str(tmp_path / 'x.npy'), str(tmp_path / 'y.npy')],
                 check=True, timeout=300)
  predictor = load_predictor()
  np.testing.assert_allclose(np.load(tmp_path / 'y.npy'), predictor.predict_proba(images), atol=1e-6)
  np.testing.assert_array_equal(np.load(tmp_path / 'y_digits.npy'), predictor.predict(images))


def test_cli_refuses_to_overwrite_and_to_write_over_non_files(tmp_path, capsys):
  assert export_lib.main(['--out', str(tmp_path)]) == 1
  assert capsys.readouterr().err == f'error: {tmp_path} exists and is not a regular file; choose another --out\n'
  (tmp_path / 'm.json').write_text('keep')
  (tmp_path / 'm').write_text('keep too')
  assert export_lib.main(['--out', str(tmp_path / 'm')]) == 1
  assert capsys.readouterr().err == f'error: {tmp_path}/m exists; pass --force to replace it, or choose another --out\n'
  assert (tmp_path / 'm.json').read_text() == 'keep' and (tmp_path / 'm').read_text() == 'keep too'
  os.mkfifo(tmp_path / 'fifo')
  assert export_lib.main(['--out', str(tmp_path / 'fifo'), '--force']) == 1
  assert 'fifo exists and is not a regular file' in capsys.readouterr().err
  assert export_lib.main(['--out', str(tmp_path / 'no' / 'm')]) == 1
  assert capsys.readouterr().err == f'error: folder {tmp_path}/no does not exist; create it or choose another --out\n'
  assert export_lib.main(['--checkpoint', str(tmp_path / 'nope'), '--out', str(tmp_path / 'm.jax')]) == 1
  assert capsys.readouterr().err == f'error: checkpoint dir {tmp_path}/nope does not exist; {CHECKPOINT_FIX}\n'
  assert not (tmp_path / 'm.jax').exists()


@pytest.mark.slow
def test_force_replaces_an_existing_artifact_whole(tmp_path, capsys):
  (tmp_path / 'm').write_text('old')
  (tmp_path / 'm.json').write_text('old')
  assert export_lib.main(['--out', str(tmp_path / 'm'), '--force']) == 0
  assert (tmp_path / 'm').stat().st_size > 1000 and json.loads((tmp_path / 'm.json').read_text())['step'] > 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ['m', 'm.json']  # No temporary files left.


@pytest.mark.slow
def test_load_model_is_pure_and_matches_the_predictor():
  apply_fn, params = load_model()
  images = np.random.default_rng(1).random((4, 28, 28, 1), np.float32)
  logits = np.asarray(apply_fn(params, images))
  np.testing.assert_array_equal(logits, np.asarray(apply_fn(params, images)))
  predictor = load_predictor()
  scaled = logits[:, :10] / predictor.temperature  # The ten digit outputs, at the stored temperature.
  probs = np.exp(scaled - scaled.max(1, keepdims=True))
  np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), predictor.predict_proba(images), atol=1e-5)


def test_saliency_shape_and_finiteness():
  predictor = tiny_predictor()
  apply_fn, params = predictor.apply_fn, predictor.variables
  image = np.zeros((28, 28, 1), np.float32)
  image[5:23, 13:15] = 1.0
  saliency = np.asarray(input_saliency(apply_fn, params, image))
  assert saliency.shape == (28, 28) and np.all(np.isfinite(saliency)) and np.abs(saliency).max() > 0
  np.testing.assert_allclose(predictor.saliency(image), saliency, rtol=1e-4, atol=1e-6)
