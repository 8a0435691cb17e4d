import json

import numpy as np
import pytest
from helpers import tiny_predictor
from PIL import Image, ImageDraw

from digitrec_jax import IMAGE_SHAPE, NOT_A_DIGIT
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


def test_predict_names_a_digit_or_not_a_digit_by_the_stored_threshold():
  x = np.random.default_rng(1).random((32, *IMAGE_SHAPE), np.float32)
  for non_digit_class in (False, True):
    open_ = tiny_predictor(calibration={'temperature': 1.0, 'threshold': 0.0}, non_digit_class=non_digit_class)
    result = open_.classify(x)
    np.testing.assert_array_equal(result.digits, result.probs.argmax(-1))  # Threshold 0: always a digit.
    assert result.probs.shape == (32, 10) and result.digit_scores.shape == (32,)
    np.testing.assert_allclose(result.probs.sum(1), 1.0, rtol=1e-5)  # Ten digit probabilities, given a digit.
    closed = tiny_predictor(calibration={'temperature': 1.0, 'threshold': 1.0}, non_digit_class=non_digit_class)
    assert closed.predict(x).tolist() == [NOT_A_DIGIT] * 32
    # Between the two, exactly the images scoring below the threshold are turned away.
    cut = float(np.median(result.digit_scores))
    mid = tiny_predictor(calibration={'temperature': 1.0, 'threshold': cut}, non_digit_class=non_digit_class)
    np.testing.assert_array_equal(mid.predict(x), np.where(result.digit_scores >= cut, result.digits, NOT_A_DIGIT))


def test_temperature_scales_the_logits():
  x = np.random.default_rng(2).random((4, *IMAGE_SHAPE), np.float32)
  plain = tiny_predictor(calibration={'temperature': 1.0, 'threshold': 0.0})
  sharp = tiny_predictor(calibration={'temperature': 0.25, 'threshold': 0.0})
  logits = np.asarray(plain.apply_fn(plain.variables, x), np.float64)
  expected = np.exp(4 * logits - (4 * logits).max(1, keepdims=True))
  np.testing.assert_allclose(sharp.predict_proba(x), expected / expected.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


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


def _png_header(width: int, height: int) -> bytes:
  """A PNG that declares `width` x `height` but holds no pixel data: enough for Pillow to read its size."""
  import struct
  import zlib

  def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
  return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0))
          + chunk(b'IDAT', b'') + chunk(b'IEND', b''))


def test_every_per_file_failure_is_one_line_and_the_rest_are_still_read(tmp_path, capsys, cli_model):
  import os
  lab = tmp_path / 'lab.tif'
  lab_image = Image.new('LAB', (40, 40), (255, 128, 128))  # A LAB-colour TIFF: once a traceback, now read.
  ImageDraw.Draw(lab_image).rectangle([18, 6, 22, 34], fill=(0, 128, 128))  # A dark bar on white.
  lab_image.save(lab)
  long_name = tmp_path / ('d' * 300 + '.png')
  fifo = tmp_path / 'fifo.png'
  os.mkfifo(fifo)
  huge = tmp_path / 'huge.png'
  huge.write_bytes(_png_header(20_000, 20_000))  # 400 megapixels, declared in 60 bytes.
  good = _one(tmp_path / 'one.png')
  assert predict_lib.main([str(lab), str(long_name), str(fifo), str(huge), str(good)]) == 1
  out, err = capsys.readouterr()
  lines = out.splitlines()
  assert len(lines) == 2 and lines[0].startswith(f'{lab}: ') and lines[1].startswith(f'{good}: ')
  assert err.splitlines() == [
      f'error: cannot open {long_name} (File name too long)',
      f'error: {fifo} is not a regular file (a FIFO, device or socket); pass an image file',
      f'error: {huge} is over the 40,000,000-pixel limit; scale it down',
  ]


def test_exif_rotation_is_applied(tmp_path):
  upright = Image.new('L', (120, 200), 255)
  ImageDraw.Draw(upright).line([(20, 40), (100, 40), (50, 180)], fill=0, width=12)  # A 7.
  rotated = upright.rotate(90, expand=True)  # Stored sideways...
  exif = Image.Exif()
  exif[0x0112] = 6  # ...with the tag that says: turn 90 degrees clockwise to view.
  rotated.save(tmp_path / 'seven.jpg', exif=exif, quality=95)
  from digitrec_jax.preprocess import preprocess_drawing
  read = predict_lib.read_image_file(tmp_path / 'seven.jpg')
  assert read.size == upright.size
  np.testing.assert_allclose(preprocess_drawing(read), preprocess_drawing(upright), atol=0.08)


def test_float_tiff_and_white_digit_on_transparent_palette_are_digits(tmp_path):
  from digitrec_jax.preprocess import looks_inverted, preprocess_drawing
  ink = np.zeros((60, 60), np.float32)
  ink[10:50, 28:33] = 1.0  # A white bar in [0, 1] floats on black.
  Image.fromarray(ink, mode='F').save(tmp_path / 'float.tif')
  palette = Image.new('P', (60, 60), 0)
  palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
  ImageDraw.Draw(palette).rectangle([28, 10, 32, 49], fill=1)
  palette.save(tmp_path / 'palette.png', transparency=0)  # Index 0 (the background) is transparent.
  expected = preprocess_drawing(ink, invert=False)
  for name in ('float.tif', 'palette.png'):
    image = predict_lib.read_image_file(tmp_path / name)
    x = preprocess_drawing(image, invert=looks_inverted(image))
    np.testing.assert_allclose(x, expected, atol=0.02, err_msg=name)


@pytest.mark.slow
def test_a_closed_pipe_ends_the_cli_quietly(tmp_path):
  import subprocess
  import sys
  paths = [str(_one(tmp_path / f'{i}.png')) for i in range(200)]
  proc = subprocess.Popen([sys.executable, '-m', 'digitrec_jax.predict', *paths], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
  proc.stdout.readline()
  proc.stdout.close()  # What `| head -1` does.
  err = proc.stderr.read().decode()
  proc.wait(timeout=120)
  assert 'Traceback' not in err and 'BrokenPipe' not in err, err


def test_a_best_step_rotated_away_while_loading_is_retried_not_called_corrupt(monkeypatch, tmp_path):
  calls = []

  def rotating(root):
    calls.append(root)
    if len(calls) < 3:  # A running training deleted the step between listing and reading it.
      raise predict_lib._Rotated
    return 'variables', 'config', {'step': 7}

  monkeypatch.setattr(predict_lib, '_restore', rotating)
  assert predict_lib.load_variables(tmp_path) == ('variables', 'config', {'step': 7}) and len(calls) == 3
  calls.clear()
  monkeypatch.setattr(predict_lib, '_restore', lambda root: (_ for _ in ()).throw(predict_lib._Rotated()))
  with pytest.raises(predict_lib.CheckpointError,
                     match=rf'^the checkpoints in {tmp_path} kept changing while they were read; try again$'):
    predict_lib.load_variables(tmp_path)
