import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitrec_jax import EmptyDrawingError, preprocess_drawing


def _seven(size, box, width, mode='L', ink=0, paper=255):
  image = Image.new(mode, (size, size), paper)
  x0, y0, x1, y1 = box
  ImageDraw.Draw(image).line([(x0, y0), (x1, y0), (x0 + (x1 - x0) // 3, y1)], fill=ink, width=width,
                             joint='curve')
  return image


def _centre_of_mass(x):
  m = x[..., 0]
  ys, xs = np.indices(m.shape)
  return (ys * m).sum() / m.sum(), (xs * m).sum() / m.sum()


def _bbox(x):
  rows = np.flatnonzero(x[..., 0].max(1) > 0.05)
  cols = np.flatnonzero(x[..., 0].max(0) > 0.05)
  return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_output_format():
  x = preprocess_drawing(_seven(280, (60, 50, 200, 240), 18))
  assert x.shape == (28, 28, 1) and x.dtype == np.float32
  assert x.min() == 0.0 and 0.9 < x.max() <= 1.0
  assert x[:, :3].max() == 0 and x[:, -3:].max() == 0  # A 20-px-tall 7 is narrower than 20 px.


def test_small_corner_digit_matches_large_centred_one():
  small = preprocess_drawing(_seven(280, (8, 10, 50, 66), 5))
  large = preprocess_drawing(_seven(280, (60, 20, 228, 244), 20))
  assert np.abs(small - large).mean() < 0.05
  assert np.corrcoef(small.ravel(), large.ravel())[0, 1] > 0.9


@pytest.mark.parametrize('box', [(8, 10, 50, 66), (60, 20, 228, 244), (200, 180, 270, 270)])
def test_mass_is_centred_within_one_pixel(box):
  cy, cx = _centre_of_mass(preprocess_drawing(_seven(280, box, 10)))
  assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1


def test_aspect_ratio_is_kept_in_a_20_pixel_box():
  image = Image.new('L', (300, 300), 255)
  ImageDraw.Draw(image).rectangle((100, 30, 160, 270), fill=0)  # 61 x 241: tall, 1:4.
  height, width = _bbox(preprocess_drawing(image))
  assert height == 20
  assert width == pytest.approx(20 * 61 / 241, abs=1)


def test_inversion_and_rgba_transparency():
  dark_on_light = _seven(200, (40, 30, 150, 170), 12)
  light_on_dark = _seven(200, (40, 30, 150, 170), 12, ink=255, paper=0)
  expected = preprocess_drawing(dark_on_light)
  np.testing.assert_allclose(preprocess_drawing(light_on_dark, invert=False), expected, atol=1e-6)
  rgba = _seven(200, (40, 30, 150, 170), 12, mode='RGBA', ink=(0, 0, 0, 255), paper=(0, 0, 0, 0))
  np.testing.assert_allclose(preprocess_drawing(rgba), expected, atol=1e-6)
  rgb_array = np.asarray(dark_on_light.convert('RGB'))
  np.testing.assert_allclose(preprocess_drawing(rgb_array), expected, atol=1e-6)
  np.testing.assert_allclose(preprocess_drawing(np.asarray(dark_on_light) / 255.0), expected, atol=1e-6)


@pytest.mark.parametrize('image', [
    Image.new('L', (280, 280), 255),
    Image.new('RGBA', (50, 50), (0, 0, 0, 0)),
    np.full((28, 28), 250, np.uint8),  # Paper-coloured noise below the ink threshold.
])
def test_blank_input_raises_empty_drawing_error(image):
  with pytest.raises(EmptyDrawingError, match='^the image is blank: it holds no strokes$'):
    preprocess_drawing(image)
  assert issubclass(EmptyDrawingError, ValueError)


def test_bad_array_shape_is_rejected():
  with pytest.raises(ValueError, match=r'expected an image array .* got shape \(2, 3, 5\)'):
    preprocess_drawing(np.zeros((2, 3, 5)))


def _scaled(strokes, height, top=0.1, left=0.1):
  ys = [y for s in strokes for _, y in s]
  lo, span = min(ys), max(ys) - min(ys)
  xs = min(x for s in strokes for x, _ in s)
  return [[(left + (x - xs) / span * height, top + (y - lo) / span * height) for x, y in s] for s in strokes]


SEVEN = [[(0.2, 0.2), (0.6, 0.2), (0.35, 0.8)]]


def test_pen_is_the_windows_unless_the_drawing_is_small():
  from digitrec_jax.preprocess import MIN_PEN, PEN_SHARE, STROKE_WIDTH, pen_width, window_pen
  assert window_pen(280) == round(0.065 * 280) == pen_width(_scaled(SEVEN, 0.7))
  small = _scaled(SEVEN, 0.2)
  pen = pen_width(small)
  assert pen < window_pen(280)
  assert pen / (0.2 * 280 + pen) == pytest.approx(PEN_SHARE, abs=0.01)  # MNIST's width against ink height.
  assert pen_width([[(0.3, 0.5), (0.6, 0.5)]]) == round(MIN_PEN * STROKE_WIDTH * 280)  # A flat dash keeps ink.
  assert pen_width([[(0.5, 0.5)]]) == round(MIN_PEN * STROKE_WIDTH * 280)  # So does a dot.


def test_a_digit_drawn_small_reaches_the_model_as_bold_as_one_drawn_large():
  from digitrec_jax import render_strokes
  from digitrec_jax.preprocess import window_pen
  # At 0.4 of the window's height the window's pen is about MNIST's width; smaller, it is thinned to it.
  large = preprocess_drawing(render_strokes(_scaled(SEVEN, 0.4)))[..., 0].sum()
  small = preprocess_drawing(render_strokes(_scaled(SEVEN, 0.15)))[..., 0].sum()
  bold = preprocess_drawing(render_strokes(_scaled(SEVEN, 0.15), pen=window_pen()))[..., 0].sum()
  assert small / large == pytest.approx(1.0, abs=0.1)
  assert bold / large > 1.6  # With the window's pen, as before: far more ink than MNIST's strokes.
