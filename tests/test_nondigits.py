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
