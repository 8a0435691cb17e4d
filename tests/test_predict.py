import json

import numpy as np
import pytest
from helpers import tiny_predictor
from PIL import Image, ImageDraw

from digitrec_jax import IMAGE_SHAPE
from digitrec_jax import predict as predict_lib


@pytest.fixture(scope='module')
def predictor():
  return tiny_predictor()


@pytest.fixture
def cli_model(monkeypatch):
  """The CLI's model: the shipped one is tested in test_shipped.py; here a tiny one (same code path)."""
  load = predict_lib.load_predictor
  monkeypatch.setattr(predict_lib, 'load_predictor', lambda checkpoint=None: load(checkpoint) if checkpoint
                      else tiny_predictor())


def _one(path):
  image = Image.new('L', (200, 200), 255)
  ImageDraw.Draw(image).line([(100, 30), (96, 170)], fill=0, width=14)
  image.save(path)
  return path


def test_predict_proba_shape_and_probabilities(predictor):
  x = np.random.default_rng(0).random((3, *IMAGE_SHAPE), np.float32)
  probs = predictor.predict_proba(x)
  assert probs.shape == (3, 10) and probs.dtype == np.float32
  np.testing.assert_allclose(probs.sum(1), np.ones(3), rtol=1e-5)


def test_single_image_shape_compiles_once(predictor):
  predictor.predict_proba(np.zeros((1, *IMAGE_SHAPE), np.float32))
  before = predictor.trace_count
  assert before >= 1
  for seed in range(5):
    predictor.predict_proba(np.random.default_rng(seed).random((1, *IMAGE_SHAPE), np.float32))
  assert predictor.trace_count == before


def test_predict_proba_rejects_wrong_shapes(predictor):
  with pytest.raises(ValueError, match=r'^expected images of shape \[B, 28, 28, 1\], got \[28, 28\]$'):
    predictor.predict_proba(np.zeros((28, 28)))


def test_cli_reports_good_images_and_errors_for_bad_ones(tmp_path, capsys, cli_model):
  good = _one(tmp_path / 'one.png')
  text = tmp_path / 'notes.png'
  text.write_text('not an image')
  missing = tmp_path / 'missing.png'
  code = predict_lib.main([str(good), str(text), str(missing)])
  out, err = capsys.readouterr()
  assert code == 1
  assert out.startswith(f'{good}: ') and out.count('%') == 3
  assert err.splitlines() == [
      f'error: {text} is not a readable image (UnidentifiedImageError); pass a PNG, JPEG or other image file',
      f'error: {missing} does not exist',
  ]


def test_cli_json_and_white_on_black_input(tmp_path, capsys, cli_model):
  path = _one(tmp_path / 'one.png')
  inverted = tmp_path / 'inverted.png'
  Image.eval(Image.open(path), lambda v: 255 - v).save(inverted)
  assert predict_lib.main([str(path), str(inverted), '--json']) == 0
  rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
  assert rows[0]['digit'] == rows[1]['digit']  # Inverted input is inverted back: the same model input.
  assert [len(r['top3']) for r in rows] == [3, 3]
  assert rows[0]['top3'][0]['probability'] > rows[0]['top3'][1]['probability']


def test_cli_empty_file_directory_and_blank_image(tmp_path, capsys, cli_model):
  empty = tmp_path / 'empty.png'
  empty.write_bytes(b'')
  blank = tmp_path / 'blank.png'
  Image.new('L', (50, 50), 255).save(blank)
  assert predict_lib.main([str(empty), str(tmp_path), str(blank)]) == 1
  assert capsys.readouterr().err.splitlines() == [
      f'error: {empty} is an empty file',
      f'error: {tmp_path} is a directory; pass image files',
      f'error: {blank}: the image is blank: it holds no strokes',
  ]


def test_cli_refuses_huge_images(tmp_path, capsys, monkeypatch, cli_model):
  monkeypatch.setattr(predict_lib, 'MAX_IMAGE_PIXELS', 100 * 100)
  big = tmp_path / 'big.png'
  Image.new('L', (101, 100), 255).save(big)
  assert predict_lib.main([str(big)]) == 1
  assert capsys.readouterr().err.strip() == (f'error: {big} is 101x100 pixels, over the 10,000-pixel limit; '
                                             'scale it down')


def test_cli_bad_checkpoint(tmp_path, capsys):
  assert predict_lib.main([str(tmp_path / 'x.png'), '--checkpoint', str(tmp_path / 'nope')]) == 1
  assert capsys.readouterr().err == (f'error: checkpoint dir {tmp_path / "nope"} does not exist; '
                                     f'{predict_lib.CHECKPOINT_FIX}\n')
