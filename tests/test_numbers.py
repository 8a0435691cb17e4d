"""read_number: strokes grouped into digits, images cut into components, photos binarized."""

import math
import re

import numpy as np
import pytest
from helpers import tiny_predictor
from PIL import Image, ImageDraw
from scipy import ndimage

from digitrec_jax import numbers
from digitrec_jax.preprocess import STROKE_WIDTH, preprocess_drawing, render_strokes


def _line(a, b, n=10):
  return [(a[0] + (b[0] - a[0]) * t / n, a[1] + (b[1] - a[1]) * t / n) for t in range(n + 1)]


def _arc(cx, cy, r, a0, a1, n=14):
  return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in np.linspace(a0, a1, n)]


ONE = [_line((0.3, 0.2), (0.28, 0.8))]
TWO = [_arc(0.6, 0.35, 0.14, math.pi, 2.2 * math.pi) + _line((0.72, 0.42), (0.55, 0.8))[1:]
       + _line((0.55, 0.8), (0.8, 0.8))[1:]]
THREE = [_arc(1.0, 0.35, 0.12, -2.6, 1.6) + _arc(1.0, 0.62, 0.15, -1.6, 2.6)]
FOUR = [_line((0.45, 0.2), (0.3, 0.6)) + _line((0.3, 0.6), (0.62, 0.6))[1:], _line((0.53, 0.3), (0.53, 0.85))]
FIVE = [_line((0.4, 0.2), (0.38, 0.48)) + _arc(0.5, 0.63, 0.15, -2.4, 2.5)[1:], _line((0.4, 0.2), (0.66, 0.2))]


@pytest.fixture(scope='module')
def shipped():
  from digitrec_jax import load_predictor
  return load_predictor()


def test_strokes_are_grouped_into_digits_by_overlap():
  p = tiny_predictor()
  assert len(numbers.read_number(p, ONE + TWO + THREE).digits) == 3
  assert len(numbers.read_number(p, FOUR).digits) == 1  # Two strokes, one digit.
  assert len(numbers.read_number(p, FIVE).digits) == 1  # The separate top bar stays with its 5.
  boxes = [d.box for d in numbers.read_number(p, ONE + TWO + THREE).digits]
  centres = [(b[0] + b[2]) / 2 for b in boxes]
  assert centres == sorted(centres) and all(a[2] < b[2] for a, b in zip(boxes, boxes[1:]))  # Left to right.
  assert numbers.read_number(p, []).text == '' and numbers.read_number(p, [[]]).digits == ()


@pytest.mark.parametrize('digit, scale', [('TWO', 1.0), ('FOUR', 1.0), ('FIVE', 1.0), ('FOUR', 0.3), ('FIVE', 0.4)])
def test_one_drawn_digit_reads_exactly_as_the_predictor(digit, scale):
  # Each stroke is drawn alone at its pixels in the whole drawing, and the strokes of a digit paste back
  # into exactly the image the window renders, so a digit of several strokes reads the same too; drawn
  # small, with the thinner pen of its size.
  strokes = [[(x * scale, y * scale) for x, y in stroke] for stroke in globals()[digit]]
  p = tiny_predictor(seed=4, calibration={'temperature': 0.9, 'threshold': 0.05})
  reading = numbers.read_number(p, strokes)
  expected = p.classify(preprocess_drawing(render_strokes(strokes))[None])
  assert len(reading.digits) == 1 and reading.digits[0].digit == expected.digits[0]
  np.testing.assert_allclose(reading.digits[0].probs, expected.probs[0], atol=1e-6)
  np.testing.assert_array_equal(reading.digits[0].model_input, preprocess_drawing(render_strokes(strokes)))


def _one_five_and_touching_zeros(with_zeros=True):
  image = Image.new('L', (400 if with_zeros else 220, 160), 255)
  draw = ImageDraw.Draw(image)
  draw.line([(40, 30), (40, 130)], fill=0, width=10)  # a 1
  draw.line([(120, 30), (170, 30)], fill=0, width=10)  # the top bar of a 5, not touching its body
  draw.line([(120, 42), (120, 75)], fill=0, width=10)
  draw.arc((110, 65, 180, 135), -110, 150, fill=0, width=10)
  if with_zeros:
    draw.ellipse((230, 30, 290, 130), outline=0, width=10)  # two 0s that touch
    draw.ellipse((286, 30, 346, 130), outline=0, width=10)
  return np.asarray(image)


def test_image_components_merge_where_they_overlap():
  reading = numbers.read_number(tiny_predictor(), _one_five_and_touching_zeros(with_zeros=False))
  assert [d.box for d in reading.digits] == [(36, 30, 46, 131), (115, 26, 181, 136)]  # The 1, and the 5 with its bar.


def test_shipped_model_reads_numbers_photos_and_noise(shipped):
  assert numbers.read_number(shipped, ONE + TWO + THREE).text == '123'
  assert numbers.read_number(shipped, FOUR).text == '4'
  assert numbers.read_number(shipped, FIVE).text == '5'
  # A 3 in dark ink on light-grey paper with a gradient and noise, as a phone photo gives.
  ink = Image.new('L', (300, 300), 0)
  d = ImageDraw.Draw(ink)
  d.arc((100, 50, 200, 150), -160, 90, fill=255, width=14)
  d.arc((95, 140, 205, 250), -90, 160, fill=255, width=14)
  paper = 0.72 + 0.18 * np.linspace(0, 1, 300)[None, :]
  photo = paper * (1 - 0.75 * np.asarray(ink, np.float32) / 255) + np.random.default_rng(0).normal(0, 0.02, (300, 300))
  reading = numbers.read_number(shipped, (np.clip(photo, 0, 1) * 255).astype(np.uint8))
  assert reading.text == '3' and reading.confidence > 0.9
  noise = (np.random.default_rng(1).random((200, 200)) * 255).astype(np.uint8)
  assert numbers.read_number(shipped, noise).text == '?'
  assert numbers.read_number(shipped, np.full((80, 80), 190, np.uint8)).text == ''  # An empty sheet.


def _shifted(strokes, dx):
  return [[(x + dx, y) for x, y in stroke] for stroke in strokes]


def test_touching_digits_are_cut_where_both_sides_read_best(shipped):
  assert numbers.read_number(shipped, _one_five_and_touching_zeros()).text == '1500'


def test_a_wide_slanted_one_is_not_cut_into_two(shipped):
  # Wider than tall, so cuts are tried; each half is itself a sure 1, but not surer than the whole by
  # SPLIT_MARGIN.
  image = Image.new('L', (360, 220), 255)
  ImageDraw.Draw(image).line([(300, 30), (60, 190)], fill=0, width=12)
  assert numbers.read_number(shipped, image).text == '1'


def test_predict_cli_prints_the_number_with_each_digit(shipped, tmp_path, capsys, monkeypatch):
  import json

  from digitrec_jax import predict as predict_lib
  monkeypatch.setattr(predict_lib, 'load_predictor', lambda checkpoint=None: shipped)
  numbers.render_wide(FOUR + _shifted(TWO, 0.55)).save(tmp_path / '42.png')
  assert predict_lib.main([str(tmp_path / '42.png')]) == 0
  out = capsys.readouterr().out
  assert re.fullmatch(rf'{tmp_path / "42.png"}: 42  \(4 \d+\.\d%, 2 \d+\.\d%\)\n', out), out
  assert predict_lib.main(['--json', str(tmp_path / '42.png')]) == 0
  row = json.loads(capsys.readouterr().out)
  assert row['number'] == '42' and [d['digit'] for d in row['digits']] == [4, 2]
  assert all(len(d['box']) == 4 for d in row['digits']) and row['digits'][0]['box'][2] <= row['digits'][1]['box'][2]


def _reading(digit, score, height=100, top=3):
  probs = np.full(10, 0.02, np.float32)
  probs[top] = 0.82
  return numbers.DigitReading(digit, probs, score, (0, 0, 40, height))


def test_a_doubtful_part_among_digits_reads_as_its_digit_by_the_shifted_odds():
  sure = _reading(7, 0.99)
  # Threshold 0.5 at odds 128 times higher becomes 1/129: 0.2 clears it, 0.005 does not.
  read = numbers._in_context([sure, _reading(numbers.NOT_A_DIGIT, 0.2), _reading(numbers.NOT_A_DIGIT, 0.005)], 0.5)
  assert [r.digit for r in read] == [7, 3, numbers.NOT_A_DIGIT]
  assert read[1].digit_score == 0.2 and read[1].box == (0, 0, 40, 100)
  shifted = 0.5 / (0.5 + numbers.NUMBER_ODDS * 0.5)
  assert [r.digit for r in numbers._in_context([sure, _reading(-1, shifted * 1.01)], 0.5)] == [7, 3]
  assert [r.digit for r in numbers._in_context([sure, _reading(-1, shifted * 0.99)], 0.5)] == [7, -1]
  # A speck-sized part, or parts with no digit among them, stay turned away.
  assert [r.digit for r in numbers._in_context([sure, sure, _reading(-1, 0.4, height=30)], 0.5)] == [7, 7, -1]
  assert [r.digit for r in numbers._in_context([_reading(-1, 0.4), _reading(-1, 0.3)], 0.5)] == [-1, -1]


def test_read_number_reads_a_doubtful_part_as_a_digit_only_within_a_number():
  # The tiny model's digit scores (its top probability) are 0.21, 0.38 and 0.33 for the 1, 2 and 3.
  p = tiny_predictor(seed=5, calibration={'temperature': 1.0, 'threshold': 0.3})
  alone = numbers.read_number(p, ONE)
  assert alone.text == '?' and 0.2 < alone.digits[0].digit_score < 0.3
  # Far enough apart (more than MERGE_GAP heights) that no weak neighbours are joined.
  number = numbers.read_number(p, ONE + _shifted(TWO, 0.2) + _shifted(THREE, 0.4))
  assert '?' not in number.text and len(number.text) == 3
  assert number.digits[0].digit == int(np.argmax(alone.digits[0].probs))


@pytest.mark.parametrize('mark', [15, 20])
def test_a_short_mark_beside_a_digit_joins_it(shipped, mark):
  # The mark reads as a sure little 1 on its own; as a part under half the digits' height it counts as
  # none, and it joins the 1 beside it rather than adding a digit (the 20 px mark read '111' before
  # 74f045a). The shipped model reads a 1 with a 30 px stick beside it as not a digit, so that mark
  # stays apart.
  image = Image.new('L', (260, 160), 255)
  draw = ImageDraw.Draw(image)
  draw.line([(40, 30), (40, 130)], fill=0, width=10)
  draw.line([(64, 110 - mark), (64, 110)], fill=0, width=8)
  draw.line([(160, 30), (158, 130)], fill=0, width=10)
  reading = numbers.read_number(shipped, np.asarray(image))
  assert reading.text == '11'
  assert reading.digits[0].box == (36, 30, 69, 131)


@pytest.mark.parametrize('bar_start', [45, 55])
def test_a_seven_whose_bar_reaches_over_a_one_is_cut_between_its_components(shipped, bar_start):
  # The 7's bar overlaps the 1 in x, so the two are one part; no column cut leaves a clean 1 (every cut
  # takes a piece of the bar with it), the cut between the components does.
  image = Image.new('L', (260, 170), 255)
  draw = ImageDraw.Draw(image)
  draw.line([(60, 50), (55, 140)], fill=0, width=10)
  draw.line([(bar_start, 25), (175, 25)], fill=0, width=10)
  draw.line([(175, 25), (125, 140)], fill=0, width=10)
  reading = numbers.read_number(shipped, np.asarray(image))
  assert reading.text == '17'
  assert reading.digits[0].box == (51, 50, 66, 141) and reading.digits[1].box[0] == bar_start


def test_sureness_among_digits_is_judged_at_the_shifted_odds():
  doubtful, sure = _reading(numbers.NOT_A_DIGIT, 0.2), _reading(7, 0.99)
  assert numbers._sureness(doubtful, 0.5) == 0.0
  assert numbers._sureness(sure, 0.5) == pytest.approx(0.99 * 0.82)
  # At odds 128 times higher the digit score 0.2 counts as 25.6 / 26.4; 0.005 stays under 1/129.
  assert numbers._sureness(doubtful, 0.5, 128.0) == pytest.approx(25.6 / 26.4 * 0.82)
  assert numbers._sureness(_reading(numbers.NOT_A_DIGIT, 0.005), 0.5, 128.0) == 0.0


def test_a_doubtful_digit_sized_part_among_digits_is_not_joined_to_its_neighbour(monkeypatch):
  # Two parts 40 px wide and 10 px apart: a sure 7 and a part the model doubts (score 0.2); joined they
  # would read as a 7 of score 0.7. Alone, the doubtful part counts as no digit and the join wins; among
  # digits (NUMBER_ODDS) it is surer as it is, so both stay.
  readings = {40: (7, 0.99), 41: (numbers.NOT_A_DIGIT, 0.2), 91: (7, 0.7)}
  def fake_read(predictor, crop, box=(0, 0, 0, 0)):
    digit, score = readings[crop.shape[1]]
    return numbers.DigitReading(digit, _reading(digit, score).probs, score, box)
  monkeypatch.setattr(numbers, '_read', fake_read)
  predictor = type('P', (), {'threshold': 0.5})()
  parts = [((0, 0, 40, 100), np.ones((100, 40), np.float32)), ((50, 0, 91, 100), np.ones((100, 41), np.float32))]
  assert [r.box for r in numbers._merge_weak(predictor, parts)] == [(0, 0, 91, 100)]
  assert [r.box for r in numbers._merge_weak(predictor, parts, numbers.NUMBER_ODDS)] == [(0, 0, 40, 100),
                                                                                          (50, 0, 91, 100)]


def test_window_strokes_are_cut_at_pen_lifts_never_through_a_stroke(monkeypatch):
  # A part 100 px wide and 80 high the model doubts (score 0.02), where any narrower side reads as a sure 1:
  # as image ink it is cut along a column; as one window stroke it stays whole (a wide 9 or 2 written in
  # one stroke read as a digit and a 1 when it was cut through its stroke); as two strokes written
  # touching side by side it is cut at the pen lift, but only into sides that are sure digits on their own.
  side = {'digit': 1, 'score': 0.99}
  def fake_read(predictor, crop, box=(0, 0, 0, 0)):
    digit, score = (numbers.NOT_A_DIGIT, 0.02) if crop.shape[1] == 100 else (side['digit'], side['score'])
    probs = np.full(10, 0.001, np.float32)
    probs[1] = 0.991
    return numbers.DigitReading(digit, probs, score, box)
  monkeypatch.setattr(numbers, '_read', fake_read)
  predictor = type('P', (), {'threshold': 0.5})()
  whole = ((0, 0, 100, 80), np.ones((80, 100), np.float32))
  assert len(numbers._split_touching(predictor, [whole], numbers.NUMBER_ODDS)) == 2
  stroke = numbers._run([whole])
  assert numbers._split_touching(predictor, [stroke], numbers.NUMBER_ODDS) == [stroke]
  left, right = ((0, 0, 48, 80), np.ones((80, 48), np.float32)), ((52, 0, 100, 80), np.ones((80, 48), np.float32))
  run = numbers._run([left, right])
  assert run[0] == whole[0] and run.strokes == [left, right]
  cut = numbers._split_touching(predictor, [run], numbers.NUMBER_ODDS)
  assert [box for box, _ in cut] == [left[0], right[0]]
  # Sides sure only at NUMBER_ODDS (a score of 0.3 alone) are a digit's own strokes: no cut.
  side.update(digit=numbers.NOT_A_DIGIT, score=0.3)
  assert numbers._split_touching(predictor, [run], numbers.NUMBER_ODDS) == [run]


def test_two_digits_written_touching_are_cut_at_the_lift_when_the_whole_reads_less_sure_alone(monkeypatch):
  # Two strokes written touching side by side, each a sure digit alone (score 0.99), that the model reads
  # together as one digit at score 0.9. Among other digits (NUMBER_ODDS) a score of 0.9 is as sure as
  # 0.99, so judged at those odds no cut ever left sides surer than the whole: the cut at the pen lift is
  # judged at the odds of a part alone. A whole the model is surer of than of its sides stays one digit.
  whole_score = {'score': 0.9}
  def fake_read(predictor, crop, box=(0, 0, 0, 0)):
    score = whole_score['score'] if crop.shape[1] == 100 else 0.99
    probs = np.full(10, 0.001, np.float32)
    probs[1] = 0.991
    return numbers.DigitReading(1, probs, score, box)
  monkeypatch.setattr(numbers, '_read', fake_read)
  predictor = type('P', (), {'threshold': 0.5})()
  left, right = ((0, 0, 48, 80), np.ones((80, 48), np.float32)), ((52, 0, 100, 80), np.ones((80, 48), np.float32))
  run = numbers._run([left, right])
  for odds in (1.0, numbers.NUMBER_ODDS):
    assert [box for box, _ in numbers._split_touching(predictor, [run], odds)] == [left[0], right[0]]
  whole_score['score'] = 0.999
  for odds in (1.0, numbers.NUMBER_ODDS):
    assert numbers._split_touching(predictor, [run], odds) == [run]


def test_two_zeros_written_touching_one_after_the_other_read_as_two(shipped):
  zero = lambda cx: [[(cx + 0.12 * math.cos(t), 0.5 + 0.22 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 40)]]
  for gap in (0.0, -0.03):  # Touching, then overlapping by half the pen.
    strokes = zero(0.3) + zero(0.3 + 0.24 + STROKE_WIDTH + gap)
    pieces = numbers._stroke_pieces(strokes)
    assert numbers._touching(*pieces) and [len(g) for g in numbers._group_strokes(pieces)] == [1]
    assert numbers.read_number(shipped, strokes).text == '00'


def test_three_or_more_digits_written_touching_are_cut_in_one_go(shipped):
  # Zeros written one after another, each touching the next: one run of strokes. No single cut leaves two
  # sure digits (one side holds two zeros or more), so the run is cut into all its digits at once.
  zero = lambda cx: [[(cx + 0.12 * math.cos(t), 0.5 + 0.22 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 40)]]
  for gap in (0.0, -0.03):
    for count in (3, 5):
      strokes = [s for k in range(count) for s in zero(0.3 + k * (0.24 + STROKE_WIDTH + gap))]
      groups = numbers._group_strokes(numbers._stroke_pieces(strokes))
      assert max(len(g[0].strokes) for g in groups) >= 3  # Three zeros or more in one run.
      assert numbers.read_number(shipped, strokes).text == '0' * count


def test_a_run_is_cut_only_into_digits_written_left_to_right(monkeypatch):
  # Three strokes that each read as a sure 1 and, any two or all three together, as no digit. Written left
  # to right (boxes at 0-40, 45-75, 70-110) they are cut into three digits; written with the last stroke
  # back to the left of the one before (0-40, 70-110, 45-75: the strokes of one digit), the cut would read
  # the digits out of their order, so the run stays whole.
  def fake_read(predictor, crop, box=(0, 0, 0, 0)):
    probs = np.full(10, 0.001, np.float32)
    probs[1] = 0.991
    return numbers.DigitReading(*((1, probs, 0.99) if crop.shape[1] <= 40 else (numbers.NOT_A_DIGIT, probs, 0.01)), box)
  monkeypatch.setattr(numbers, '_read', fake_read)
  predictor = type('P', (), {'threshold': 0.5})()
  a, b, c = [((x0, 0, x1, 80), np.ones((80, x1 - x0), np.float32)) for x0, x1 in ((0, 40), (45, 75), (70, 110))]
  assert [box for box, _ in numbers._cut_run(predictor, numbers._run([a, b, c]))] == [a[0], b[0], c[0]]
  run = numbers._run([a, c, b])
  assert numbers._cut_run(predictor, run) == [run]


def _two(x, tail):
  """A 2 in one stroke, its base running `tail` right of its centre `x`."""
  arc = [(x + 0.11 * math.cos(t), 0.4 + 0.12 * math.sin(t)) for t in np.linspace(math.pi * 1.1, math.pi * 2.15, 20)]
  return [arc + _line(arc[-1], (x - 0.11, 0.74))[1:] + _line((x - 0.11, 0.74), (x + tail, 0.74))[1:]]


def test_touching_digits_are_cut_when_the_next_digit_overlaps_them_without_touching(shipped):
  # A 0 and a 2 written touching, then a 1 above the end of the 2's long base: the 1 touches no ink, but its
  # box overlaps the 2's, so all three are one group of two runs. Cut only between the runs, the 0 and the
  # 2 stayed one part that is no digit (`?`); the group's strokes are cut in the order they were written.
  zero = [[(0.3 + 0.12 * math.cos(t), 0.5 + 0.22 * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 40)]]
  x = 0.3 + 0.12 + 0.11 + STROKE_WIDTH - 0.03  # The 2's left side half a pen inside the 0's.
  for shift in (0.0, 0.02):
    strokes = zero + _two(x, 0.2) + [_line((x + 0.28 + shift, 0.26), (x + 0.2 + shift, 0.66))]
    pieces = numbers._stroke_pieces(strokes)
    assert numbers._touching(pieces[0], pieces[1]) and not numbers._touching(pieces[1], pieces[2])
    assert [[len(run.strokes) for run in g] for g in numbers._group_strokes(pieces)] == [[2, 1]]
    assert numbers.read_number(shipped, strokes).text == '021'


@pytest.mark.parametrize('start, slant', [(-0.04, 0.08), (0.0, 0.04)])
def test_a_one_written_touching_the_end_of_a_twos_base_reads_as_two_digits(shipped, start, slant):
  # The 1 stands on the end of the 2's base and reaches back over it by 0.6-0.75 of its own width: more
  # than two parts split anywhere may overlap (2 MERGE_OVERLAP), less than digits written one after another
  # may (RUN_OVERLAP). It read '?'.
  strokes = _two(0.35, 0.12) + [_line((0.47 + start + slant, 0.26), (0.47 + start, 0.7))]
  (a, _), (b, _) = pieces = numbers._stroke_pieces(strokes)
  assert numbers._touching(*pieces)
  assert 2 * numbers.MERGE_OVERLAP < (a[2] - max(a[0], b[0])) / (b[2] - b[0]) < numbers.RUN_OVERLAP
  assert numbers.read_number(shipped, strokes).text == '21'


def _slanted_one(x, top=0.25, bottom=0.8, slant=0.22):
  return [_line((x + slant, top), (x, bottom))]


def test_two_slanted_ones_whose_boxes_overlap_read_as_two_digits(shipped):
  # The second 1 starts left of where the first one ends: their boxes overlap by more than MERGE_OVERLAP,
  # so they are one group; the split between the strokes reads as two sure 1s.
  strokes = _slanted_one(0.3) + _slanted_one(0.47)
  assert numbers.read_number(shipped, strokes).text == '11'
  assert numbers.read_number(shipped, np.asarray(numbers.render_wide(strokes))).text == '11'


def test_a_crossed_seven_and_a_two_stroke_four_stay_one_digit_each(shipped):
  seven = [_line((0.3, 0.25), (0.6, 0.25)) + _line((0.6, 0.25), (0.42, 0.85))[1:], _line((0.38, 0.55), (0.62, 0.55))]
  assert numbers.read_number(shipped, seven).text == '7'
  assert numbers.read_number(shipped, seven + _shifted(FOUR, 0.45)).text == '74'


# A 7 written as its bar, then its stem from the bar's right end down to the right: the two boxes share
# only the pen's width, far under MERGE_OVERLAP, but the strokes touch and were written one after the other.
BAR_THEN_STEM = [_line((0.3, 0.25), (0.55, 0.25)), _line((0.55, 0.25), (0.78, 0.8))]


def test_touching_strokes_written_one_after_another_are_one_digit():
  pieces = numbers._stroke_pieces(BAR_THEN_STEM)
  assert numbers._touching(pieces[0], pieces[1])
  assert len(numbers._group(pieces)) == 2  # By box overlap alone: two parts.
  assert [len(g) for g in numbers._group_strokes(pieces)] == [1]  # One piece, as touching ink is.
  # Written in the other order the strokes still touch one after the other.
  assert [len(g) for g in numbers._group_strokes(pieces[::-1])] == [1]
  # Apart by a gap, the same strokes are two runs, and their boxes do not overlap: two groups.
  apart = numbers._stroke_pieces([BAR_THEN_STEM[0], [(x + 0.08, y) for x, y in BAR_THEN_STEM[1]]])
  assert not numbers._touching(apart[0], apart[1]) and len(numbers._group_strokes(apart)) == 2
  # Touching joins strokes written one after the other only: the stem, a 1 further right, then the bar.
  bar, stem = BAR_THEN_STEM
  groups = numbers._group_strokes(numbers._stroke_pieces([stem] + _shifted(ONE, 0.9) + [bar]))
  assert [len(g) for g in groups] == [1, 1, 1]
  # The whole window path: one digit.
  assert len(numbers.read_number(tiny_predictor(), BAR_THEN_STEM).digits) == 1


def test_a_seven_written_as_bar_then_stem_reads_as_one_seven(shipped):
  assert numbers.read_number(shipped, BAR_THEN_STEM).text == '7'
  assert numbers.read_number(shipped, ONE + _shifted(BAR_THEN_STEM, 0.25)).text == '17'


def test_a_stray_short_stroke_beside_a_digit_joins_it(shipped):
  # A short mark under half the digits' height, close to the 5, counts as no digit and joins it.
  mark = [_line((0.76, 0.62), (0.77, 0.7))]
  assert numbers.read_number(shipped, ONE + _shifted(FIVE, 0.2) + _shifted(mark, 0.2)).text == '15'


def _small_three_on_squared_paper(cell=60, size=600, tilt=0.0, line_tint=(0.7, 0.78, 0.95)):
  """A 3 a fifth of the page high in dark ink, on paper with faint blue-grey squares, as a phone photo of a
  notebook gives (RGB uint8); the squares `tilt` degrees askew, as on a page photographed at a slant."""
  ink = Image.new('L', (size, size), 0)
  d = ImageDraw.Draw(ink)
  d.arc((260, 240, 330, 310), -160, 90, fill=255, width=9)
  d.arc((256, 302, 334, 380), -90, 160, fill=255, width=9)
  rgb = np.full((size, size, 3), 0.93, np.float32)
  rows, cols = np.mgrid[0:size, 0:size]
  slope = np.tan(np.radians(tilt))
  for along, across in ((rows, cols), (cols, -rows)):  # Two-pixel lines, some crossing the 3.
    rgb[(np.floor(along - across * slope) - cell // 2) % cell < 2] *= line_tint
  rgb *= 1 - 0.85 * np.asarray(ink, np.float32)[..., None] / 255
  rgb += np.random.default_rng(2).normal(0, 0.015, rgb.shape)
  return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize('tilt', [0.0, 4.0, -5.0])
def test_the_lines_of_squared_paper_are_not_ink(shipped, tilt):
  photo = _small_three_on_squared_paper(tilt=tilt)
  ink = numbers.ink_of_image(photo)
  assert ink[:200].max() == 0 and ink[420:].max() == 0  # Lines, and their crossings, far from the 3.
  assert ink[240:380, 256:334].sum() > 0.5 * (np.asarray(ink) > 0).sum()  # Where there is ink, it is the 3.
  reading = numbers.read_number(shipped, photo)
  assert reading.text == '3' and reading.confidence > 0.9
  # Before lines were told from strokes, the page's lines pulled Otsu's threshold down and became ink
  # everywhere: this photo read '?'. The same 3 on plain paper reads the same as on squared paper.
  plain = numbers.read_number(shipped, _small_three_on_squared_paper(cell=10_000, tilt=tilt))
  assert plain.text == '3' and abs(plain.confidence - reading.confidence) < 0.05


def test_ink_along_the_edges_is_no_desk_when_it_holds_all_the_writing():
  # A band along the left edge with a digit-sized block joined to it, and nothing else: leaving it out would
  # leave no ink at all (the notebook benchmark then raised IndexError, on squares that a 5 touched).
  mask = np.zeros((100, 100), bool)
  mask[:, :3] = True
  mask[40:60, 3:30] = True
  core = np.zeros_like(mask)
  core[40:60, 3:30] = True
  mask[70:72, 70:72] = True  # A faint speck clear of the edges, under Otsu's threshold: no core.
  assert not numbers._around_the_page(mask, core).any()
  # With writing clear of the margin, the band and what it holds are the desk.
  mask[40:60, 50:70] = core[40:60, 50:70] = True
  assert numbers._around_the_page(mask, core).sum() == 100 * 3 + 20 * 27


def test_a_digit_touching_the_squares_of_squared_paper_beside_a_dash_reads_as_the_digit(shipped):
  # The squares reach every edge and the 3 touches them; the desk rule is judged without the page's lines.
  photo = _small_three_on_squared_paper(line_tint=(0.6, 0.6, 0.6))  # Squares printed darker.
  photo[290:300, 345:375] = (35, 35, 35)
  ink = numbers.ink_of_image(photo)
  assert ink[240:380, 256:334].sum() > 0.5 * ink.sum() > 0
  assert numbers.read_number(shipped, photo).text == '3'


def test_a_bar_across_the_whole_image_stays_when_it_is_as_dark_as_the_strokes():
  # A tightly cropped 7: its bar runs the image's width, a straight run the length of a paper's line.
  image = np.full((120, 100), 235, np.uint8)
  image[8:20, 2:98] = 30
  for y in range(20, 116):
    x = int(92 - (y - 20) * 0.6)
    image[y, x - 6:x + 6] = 30
  ink = numbers.ink_of_image(image)
  assert ink[10:18, 5:95].min() > 0.5


def test_a_filled_digit_on_unevenly_lit_paper_is_ink_through_its_middle():
  # A filled blot 70 px wide on a photo 120 px wide: the paper's first estimate (a percentile over a third of
  # the short side) is the ink's own in its middle, which came out as pale as paper (ink 0 there, before the
  # paper was estimated again from the pixels clear of the ink).
  blot = Image.new('L', (120, 200), 0)
  ImageDraw.Draw(blot).ellipse((25, 45, 95, 155), fill=255)
  inside = np.asarray(blot) > 0
  light = 0.8 + 0.1 * np.linspace(0, 1, 120)[None, :]
  photo = (np.clip(light * (1 - 0.7 * inside), 0, 1) * 255).astype(np.uint8)
  ink = numbers.ink_of_image(photo)
  assert ink[ndimage.binary_erosion(inside, iterations=3)].min() > 0.9
  assert ink[~ndimage.binary_dilation(inside, iterations=3)].max() == 0


def _three_on_a_sheet(desk=0, shadow=None):
  """A 3 in dark ink on a 480x640 photo of light paper (RGB uint8): `desk` pixels of a brown desk around the
  sheet, or the part of the page right of column `shadow` in a shadow half as bright, its edge blurred."""
  ink = Image.new('L', (640, 480), 0)
  d = ImageDraw.Draw(ink)
  d.arc((270, 150, 370, 250), -160, 90, fill=255, width=14)
  d.arc((265, 240, 375, 350), -90, 160, fill=255, width=14)
  rgb = np.empty((480, 640, 3), np.float32)
  rgb[...] = (0.92, 0.9, 0.86)
  if desk:
    rgb[:desk], rgb[-desk:], rgb[:, :desk], rgb[:, -desk:] = [(0.35, 0.25, 0.18)] * 4
  rgb *= 1 - 0.85 * np.asarray(ink, np.float32)[..., None] / 255
  if shadow is not None:
    rgb *= 1 - 0.45 / (1 + np.exp((shadow - np.arange(640)[None, :, None]) / 3))
  rgb += np.random.default_rng(3).normal(0, 0.02, rgb.shape)
  return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize('desk', [20, 60])
def test_a_sheet_photographed_on_a_darker_desk_reads_its_digit(shipped, desk):
  # The desk all round is the image's border: before, the image read as light ink on a dark ground (the
  # sheet itself the ink) and then the desk as ink around the digit; both read '?'.
  photo = _three_on_a_sheet(desk=desk)
  ink = numbers.ink_of_image(photo)
  assert ink[:desk + 20].max() == 0 and ink[:, :desk + 20].max() == 0 and ink[-desk - 20:].max() == 0
  assert np.count_nonzero(ink[140:360, 255:385]) == np.count_nonzero(ink) > 0  # All the ink is the 3.
  reading = numbers.read_number(shipped, photo)
  assert reading.text == '3' and reading.confidence > 0.9


@pytest.mark.parametrize('digit_at_edge', [False, True])
def test_ink_cut_off_by_the_edge_that_is_no_digit_is_left_out_beside_whole_writing(monkeypatch, digit_at_edge):
  # A blob meeting the image's bottom edge with a narrow stem (a desk's sliver, a shadow's corner: too
  # big to be a speck and meeting the edge too little to be ink along it) reads as no digit even among
  # digits; a 50 px wide bar reads as a sure 3. Beside a digit clear of the edges the blob is left out;
  # when the digit meets an edge too (a tightly cropped number), nothing is left out.
  def fake_read(predictor, crop, box=(0, 0, 0, 0)):
    probs = np.full(10, 0.001, np.float32)
    probs[3] = 0.991
    return numbers.DigitReading(*((3, probs, 0.99) if crop.shape[1] == 50 else (numbers.NOT_A_DIGIT, probs, 1e-4)), box)
  monkeypatch.setattr(numbers, '_read', fake_read)
  predictor = type('P', (), {'threshold': 0.5})()
  image = np.full((240, 400), 255, np.uint8)
  image[130:190, 20:80] = 0
  image[190:, 45:55] = 0  # The stem down to the bottom edge.
  image[40:200, 250:300] = 0
  if digit_at_edge:
    image[:40, 270:280] = 0  # The 3's top reaches the top edge.
  reading = numbers.read_number(predictor, image)
  assert [r.box for r in reading.digits] == ([(20, 130, 80, 240)] if digit_at_edge else []) + [
      (250, 0 if digit_at_edge else 40, 300, 200)]
  assert reading.text == ('?3' if digit_at_edge else '3')


@pytest.mark.parametrize('edge', [330, 450])
def test_a_shadow_with_a_sharp_edge_is_paper_not_ink(shipped, edge):
  # A shadow over the right of the page, its edge through the 3 or beside it: the smooth paper estimate
  # (a third of the image wide) is too bright inside it, which read the shadowed paper as ink: '?'.
  photo = _three_on_a_sheet(shadow=edge)
  ink = numbers.ink_of_image(photo)
  assert ink[:, 400:].max() == 0 if edge == 330 else ink[:, 390:].max() == 0
  assert np.count_nonzero(ink[140:360, 255:385]) == np.count_nonzero(ink) > 0  # All the ink is the 3.
  reading = numbers.read_number(shipped, photo)
  assert reading.text == '3' and reading.confidence > 0.9


def test_strokes_are_dark_on_light_unless_the_border_and_most_of_the_image_are_dark():
  mnist_like = np.zeros((28, 28), np.float32)
  mnist_like[6:22, 12:16] = 1.0  # A light 1 on black.
  assert not numbers._dark_strokes(mnist_like)
  sheet = np.full((100, 100), 0.3, np.float32)
  sheet[10:90, 10:90] = 0.9  # A light sheet on a dark desk, all round: the border is dark, most pixels light.
  assert numbers._dark_strokes(sheet)
  shaded = np.full((100, 100), 0.9, np.float32)
  shaded[:, 30:] = 0.4  # A shadow over most of the page: the light third still holds a quarter of the border.
  assert numbers._dark_strokes(shaded)
  assert numbers._dark_strokes(np.full((10, 10), 0.7, np.float32))  # A blank sheet.
  small_sheet = np.full((200, 300), 0.25, np.float32)
  small_sheet[30:170, 40:240] = 0.85  # Under half of the photo, the desk all round: its thickness tells.
  small_sheet[80:120, 150:156] = 0.1  # A stroke on it.
  assert numbers._dark_strokes(small_sheet)
  # A bold light digit cropped tightly on black (under PHOTO_SIDE): light over much of its border and
  # most of its pixels, and still light on dark.
  bold = np.zeros((40, 30), np.float32)
  bold[:, 4:26] = 1.0
  bold[8:32, 12:18] = 0.0
  assert not numbers._dark_strokes(bold)


def test_a_tightly_cropped_bold_one_and_two_digits_at_the_edges_keep_their_ink():
  # Strokes thicker than a third of the short side stay ink: the closing's square also spans a sixth of the
  # long side, so a bold 1 cropped to its stroke is no shadow.
  one = np.full((160, 40), 235, np.uint8)
  one[:, 12:30] = 25
  assert numbers.ink_of_image(one)[5:155, 14:28].min() > 0.5
  # A 7 whose bar lies along the top edge and meets the right one, beside a 1 near the edges too: digits
  # cropped tightly, not a desk around a sheet (that needs the rest of the ink clear of the edges).
  seventeen = np.full((120, 150), 235, np.uint8)
  seventeen[4:116, 4:16] = 25  # The 1, 4 px from the top, bottom and left edges.
  seventeen[0:12, 60:150] = 25  # The 7's bar, along the top edge for 90 px (three quarters of the short side).
  for y in range(12, 120):
    x = int(140 - (y - 12) * 0.5)
    seventeen[y, x - 6:x + 6] = 25
  ink = numbers.ink_of_image(seventeen)
  assert ink[2:10, 65:145].min() > 0.5 and ink[10:110, 6:14].min() > 0.5


def test_a_component_fainter_than_the_ink_threshold_is_no_part():
  # It would reach preprocess_drawing as a blank image (EmptyDrawingError) and stop the whole reading.
  ink = np.zeros((100, 200), np.float32)
  ink[20:80, 20:40] = 0.9
  ink[20:80, 120:140] = 0.08
  parts = numbers._image_parts(ink)
  assert [box for box, _ in parts] == [(20, 20, 40, 80)]


def test_a_large_photo_is_read_on_a_smaller_copy_with_boxes_in_its_own_pixels(shipped):
  # The squared-paper 3, and the same photo at 4x (2,400 px): read on a WORK_SIDE copy, the same answer,
  # with the box in the large photo's pixels.
  small = _small_three_on_squared_paper()
  large = Image.fromarray(small).resize((2400, 2400), Image.Resampling.BICUBIC)
  assert numbers.ink_of_image(large).shape == (numbers.WORK_SIDE, numbers.WORK_SIDE)
  assert numbers.ink_of_image(small).shape == (600, 600)  # Under WORK_SIDE: read at its own size.
  a, b = numbers.read_number(shipped, small), numbers.read_number(shipped, large)
  assert a.text == b.text == '3' and abs(a.confidence - b.confidence) < 0.05
  np.testing.assert_allclose(np.array(b.digits[0].box), 4 * np.array(a.digits[0].box), atol=12)
  # A wide noise image is one part that is not a digit, boxed in its own pixels.
  noise = (np.random.default_rng(1).random((1100, 2200)) * 255).astype(np.uint8)
  reading = numbers.read_number(shipped, noise)
  assert reading.text == '?' and reading.digits[0].box == (0, 0, 2200, 1100)


@pytest.mark.parametrize('dot', [(0.05, 0.5), (0.62, 0.45), (1.3, 0.8)])
def test_a_click_beside_a_digit_is_a_mark_not_a_digit(dot):
  # A one-point stroke (a click) far from the 1 is its own part; under MARK of the 1's height both ways,
  # it is left out instead of being read as a digit.
  p = tiny_predictor()
  alone = numbers.read_number(p, ONE)
  reading = numbers.read_number(p, ONE + [[dot]])
  assert len(reading.digits) == 1 and reading.text == alone.text
  assert reading.digits[0].box == alone.digits[0].box
  np.testing.assert_allclose(reading.digits[0].probs, alone.digits[0].probs, atol=1e-6)


def test_only_parts_far_smaller_than_the_tallest_both_ways_are_marks():
  def part(width, height):
    return numbers.DigitReading(0, np.full(10, 0.1, np.float32), 1.0, (0, 0, width, height))
  tall, small_digit, dash, dot = part(60, 200), part(30, 60), part(55, 8), part(20, 20)
  assert numbers._without_marks([tall, small_digit, dash, dot]) == (tall, small_digit, dash)
  assert numbers._without_marks([dot]) == (dot,)  # A drawing of one dot is read, as the Predictor reads it.


def test_a_pen_click_or_a_dot_beside_digits_adds_no_digit(shipped):
  # Fitted to 20x20 alone, the dot is a filled disc: the shipped model read '30' for the strokes and '11?'
  # for the image before MARK.
  assert numbers.read_number(shipped, THREE + [[(1.4, 0.5)]]).text == '3'
  image = Image.new('L', (260, 160), 255)
  draw = ImageDraw.Draw(image)
  draw.line([(60, 30), (58, 130)], fill=0, width=10)
  draw.line([(160, 30), (158, 130)], fill=0, width=10)
  draw.ellipse((215, 120, 225, 130), fill=0)
  assert numbers.read_number(shipped, np.asarray(image)).text == '11'


def test_a_drawing_of_dots_alone_is_one_part_that_is_not_a_digit():
  # Each click, fitted alone, would be a filled disc (the shipped model: '00'); dots and nothing else are
  # not a number. One click alone reads as the Predictor reads it, and a click beside a digit is a mark.
  p = tiny_predictor(calibration={'temperature': 1.0, 'threshold': 0.0})
  for clicks in ([[(0.2, 0.2)], [(0.8, 0.8)]], [[(0.3, 0.5)], [(0.5, 0.5)], [(0.7, 0.52), (0.71, 0.52)]]):
    reading = numbers.read_number(p, clicks)
    assert reading.text == '?' and len(reading.digits) == 1 and reading.confidence == 0.0
    assert reading.digits[0].digit == numbers.NOT_A_DIGIT
  one_click = [[(0.5, 0.5)]]
  expected = p.classify(preprocess_drawing(render_strokes(one_click))[None])
  assert numbers.read_number(p, one_click).digits[0].digit == expected.digits[0] != numbers.NOT_A_DIGIT
  assert len(numbers.read_number(p, ONE + [[(0.8, 0.5)], [(1.2, 0.5)]]).digits) == 1


@pytest.mark.parametrize('strokes, message', [
    # Pixel coordinates of a 280-pixel canvas, passed without dividing by its side.
    ([[(140, 140), (150, 200)]], r"stroke point \(140, 140\) is not in window units: .* divide pixel coordinates "
                                  r"by the canvas side$"),
    ([[(0.2, 0.3), (float('nan'), 0.5)]], r"stroke point \(nan, 0\.5\) is not in window units"),
    ([[(0.2, 0.3)], [(-20.0, 0.5)]], r"stroke point \(-20, 0\.5\) is not in window units"),
    ([[(0.2, 0.3, 0.1)]], r"^each stroke must be a list of \(x, y\) points, got \[\(0\.2, 0\.3, 0\.1\)\]$"),
    ([[0.2, 0.3]], r"^each stroke must be a list of \(x, y\) points"),
    ([[('a', 'b')]], r"^each stroke must be a list of \(x, y\) points"),
    ([5], r"^each stroke must be a list of \(x, y\) points, got 5$"),
])
def test_strokes_not_in_window_units_are_refused_with_the_fix(strokes, message):
  # Before the check, the first case drew on a canvas of 42,008 x 56,008 pixels (2.4 GB) and Pillow then
  # refused a crop of it as a decompression bomb; NaN failed deep inside ('cannot convert float NaN to integer').
  with pytest.raises(ValueError, match=message):
    numbers.read_number(tiny_predictor(), strokes)


def test_strokes_anywhere_within_the_units_limit_are_read():
  p = tiny_predictor()
  edge = numbers.MAX_UNITS
  reading = numbers.read_number(p, [[(edge - 0.4, 0.2), (edge - 0.4, 0.8)], [], [(-1.0, 0.5)]])
  assert len(reading.digits) == 1 and reading.digits[0].box[0] > 200 * (edge - 1)
