"""The synthetic non-digit generators: deterministic, MNIST-format, and never a lone bar (a 1)."""

import numpy as np

from helpers import synthetic_digits
from digitrec_jax import nondigits


def _digits():
  images, labels = synthetic_digits(64, 0)
  return images.reshape(-1, 28, 28, 1), labels


def test_a_bank_is_deterministic_in_its_seed_and_mnist_shaped():
  a, kinds = nondigits.make_non_digits(60, 5, _digits())
  b, _ = nondigits.make_non_digits(60, 5, _digits())
  c, _ = nondigits.make_non_digits(60, 6, _digits())
  assert a.shape == (60, 28, 28, 1) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert set(kinds.tolist()) == set(range(len(nondigits.KINDS)))  # Every kind is made.
  assert np.all(a.reshape(60, -1).max(1) > 0)  # No blank images.
  assert not any(nondigits.is_line(im / 255.0) for im in a)


def test_held_out_shapes_and_fonts_are_not_trained_on():
  assert set(nondigits.HELD_OUT_SHAPES).isdisjoint(nondigits.TRAIN_SHAPES)
  assert set(nondigits.HELD_OUT_FONTS).isdisjoint(nondigits.TRAIN_FONTS)
  for font in nondigits.TRAIN_FONTS + nondigits.HELD_OUT_FONTS:
    assert (nondigits._font_dir() / font).is_file()
  # Nothing a careful reader calls a digit is drawn as a non-digit.
  assert set(nondigits.SHAPES).isdisjoint(set('OoDQCIlJtfTSsZzBgqaYyPbG|!?$0123456789'))
  assert set(nondigits.FONT_CHARS).isdisjoint(set('OoDQCIlJtfTSsZzBgqaYyPbG|!?$0123456789'))


def test_a_bar_is_a_line_and_a_cross_is_not():
  bar = np.zeros((28, 28), np.float32)
  bar[4:24, 13:15] = 1.0
  cross = bar.copy()
  cross[13:15, 4:24] = 1.0
  assert nondigits.is_line(bar) and not nondigits.is_line(cross)


def test_pen_digits_are_deterministic_labelled_and_cover_every_digit():
  a, labels = nondigits.make_pen_digits(80, 3)
  b, labels_b = nondigits.make_pen_digits(80, 3)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(labels, labels_b)
  assert a.shape == (80, 28, 28, 1) and a.dtype == np.uint8 and labels.dtype == np.int32
  assert set(labels.tolist()) == set(range(10)) and sorted(nondigits.DIGIT_SHAPES) == list(range(10))
  assert np.all(a.reshape(80, -1).max(1) > 200)  # Every one drawn, at full ink.


def _ring(n=6):
  """uint8 MNIST-like 0s [n, 28, 28, 1]: anti-aliased rings 20 px tall, about 2.5 px wide."""
  yy, xx = np.indices((28, 28))
  r = np.hypot((yy - 13.5) / 10, (xx - 13.5) / 7)
  ring = np.clip(1.6 - np.abs(r - 0.85) * 14, 0, 1)
  return np.tile((ring * 255).astype(np.uint8)[None, ..., None], (n, 1, 1, 1)), np.zeros(n, np.uint8)


def _pen_width(image):
  """Stroke width in 28x28 pixels: twice the ink area over the outline length (as redraw_with_pen)."""
  on = np.asarray(image).reshape(28, 28) > 0.5
  edges = np.sum(on[:, 1:] != on[:, :-1]) + np.sum(on[1:] != on[:-1])
  return 2 * on.sum() / (edges * np.pi / 4)


def test_redrawn_digits_take_the_window_pen_width_for_their_size():
  (images, _), rng = _ring(), np.random.default_rng(0)
  out = [nondigits.redraw_with_pen(images[0], rng, soft_share=0.0) for _ in range(40)]
  assert all(o.shape == (28, 28, 1) and o.dtype == np.float32 and 0 <= o.min() and o.max() <= 1 for o in out)
  widths = np.array([_pen_width(o) for o in out])
  # The window's pen is 6.5% of the canvas; a digit drawn at height h (of the canvas) fitted into 20 px
  # gets a stroke of 20 * 0.065 / h pixels: 1.4 px at 0.9 of the canvas up to 5.2 px at a quarter.
  assert 1.0 < widths.min() and widths.max() < 6.5 and widths.max() / widths.min() > 1.8
  # Soft ones keep the digit's own stroke, only refitted; the same generator state gives the same drawing.
  soft = nondigits.redraw_with_pen(images[0], np.random.default_rng(1), soft_share=1.0)
  assert abs(_pen_width(soft) - _pen_width(images[0] / 255.0)) < 0.6
  np.testing.assert_array_equal(nondigits.redraw_with_pen(images[0], np.random.default_rng(5)),
                                nondigits.redraw_with_pen(images[0], np.random.default_rng(5)))


def test_soft_share_of_pen_digits_keeps_the_digits_own_strokes():
  images, labels = _ring(10)
  own = _pen_width(images[0] / 255.0)
  soft, _ = nondigits.make_pen_digits(30, 4, (images, labels), mnist_share=1.0, soft_share=1.0)
  solid, _ = nondigits.make_pen_digits(30, 4, (images, labels), mnist_share=1.0, soft_share=0.0)
  soft_widths = np.array([_pen_width(o / 255.0) for o in soft])
  solid_widths = np.array([_pen_width(o / 255.0) for o in solid])
  # Soft: the ring's own stroke at every size; solid: the window's pen, thick when drawn small.
  assert np.abs(soft_widths - own).max() < 0.6
  assert solid_widths.max() / solid_widths.min() > 1.8
  np.testing.assert_array_equal(soft, nondigits.make_pen_digits(30, 4, (images, labels), 1.0, 1.0)[0])


def test_pen_digits_can_be_mnist_digits_redrawn_with_their_own_labels():
  images, labels = _ring(40)
  labels[:] = 7  # Rings labelled 7 tell redrawn ones (7) from templates (any digit).
  a, out_labels = nondigits.make_pen_digits(200, 3, (images, labels), mnist_share=0.5)
  b, _ = nondigits.make_pen_digits(200, 3, (images, labels), mnist_share=0.5)
  np.testing.assert_array_equal(a, b)
  redrawn = out_labels == 7
  assert 70 < redrawn.sum() < 140  # About half (templates draw 7s too, a tenth of the rest).
  # A redrawn ring keeps its hole.
  centre = a[redrawn, 11:17, 11:17, 0].astype(float).mean()
  assert centre < 40
  with np.testing.assert_raises_regex(ValueError, 'mnist_share > 0 needs the MNIST digits'):
    nondigits.make_pen_digits(10, 3, mnist_share=0.5)
  np.testing.assert_array_equal(nondigits.make_pen_digits(50, 3)[0],
                                nondigits.make_pen_digits(50, 3, (images, labels), mnist_share=0.0)[0])
