"""Whole numbers: `read_number(predictor, drawing)` splits a drawing, a scan or a photo into digits and
reads each one with the Predictor.

A drawing is first cut into pieces: the window's strokes, each drawn alone at its pixels in the whole
drawing, or the connected components of an image's ink (`scipy.ndimage.label`: scipy already comes with
jax, and its labelling handles 8-connectivity and sizes in C). Images are binarized against an estimate
of the paper's own brightness (a large percentile filter, so gradients and soft shadows drop out, and a
grey closing for a sharp shadow or a desk reaching in from the image's edge; then Otsu's threshold on the
darkness, less the faint straight lines of ruled or squared paper and the desk around a photographed
sheet). From there both take one path: pieces that overlap horizontally are grouped (a 4 or a 5 drawn in
two strokes, the separate top bar of a 5); a group is cut where the two sides read best (recognition-based
segmentation): between its pieces when they stand side by side (two slanted digits whose boxes
overlap), in an image at a low-ink column when it is too wide for one digit, and in window strokes only
at pen lifts, into all the digits written one after another at once, left to right (strokes that touch are
one piece, which keeps the order they were drawn in); weak neighbours
are joined where together they read surer (a stray mark, a broken stroke), and a mark far smaller than
the tallest part both ways (a click of the pen, a full stop) is left out, as is, in an image, a part cut
off by its edge that is no digit beside digits clear of the edges (a sliver of desk). Each part goes through
`preprocess_drawing`, exactly as a single digit does. Among other digits, a digit-sized part the model
doubts is read as a digit at shifted odds (NUMBER_ODDS), and cuts and joins among other parts are judged
at those odds, but for a cut at a pen lift, judged as parts alone; a part drawn alone keeps the model's
answer.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from PIL import Image

from digitrec_jax.model import NOT_A_DIGIT
from digitrec_jax.preprocess import (INK_THRESHOLD, RENDER_SIZE, Strokes, border, pen_width, preprocess_drawing,
                                     render_strokes)

# Boxes overlapping by at least this share of the narrower one's width belong to one digit.
MERGE_OVERLAP = 0.25
# A part wider than this many times its height may hold touching digits: cuts are tried.
SPLIT_ASPECT = 0.9
# Components smaller than this share of the largest one are specks (dust, JPEG noise) and are dropped.
SPECK = 0.04
# Darkness (relative to the paper) below this is never ink: blank paper stays blank.
MIN_CONTRAST = 0.18
# The paper's brightness is this percentile of the brightness around each pixel, estimated on a copy
# of the image scaled to PAPER_SIDE pixels on its short side (light varies slowly across a page).
PAPER_PERCENTILE = 90
PAPER_SIDE = 64
# The paper is then estimated again from the pixels of that copy with less than PAPER_INK of them ink (at
# half Otsu's threshold, on the first estimate), less their neighbours and what the ink encloses: a
# Gaussian-weighted mean over the clear pixels, kept where they weigh more than PAPER_CLEAR (elsewhere the
# first estimate stays).
PAPER_INK = 0.02
PAPER_CLEAR = 0.05
# A shadow's sharp edge or a desk: the paper is also estimated by a grey closing, which keeps steps in the
# light, and is the darker of the two estimates; but not inside ink larger than the closing's square (a
# filled digit): where, away from the image's edges, the closing is SHADOW_DEPTH darker than most of the
# paper (its 90th percentile) (`_shadow_paper`).
SHADOW_DEPTH = 0.15
# Ink within AROUND_MARGIN of the short side of the image's edges, along them for at least AROUND_RUN of its
# own longest side or under AROUND_SMALL of the size of the largest ink clear of that margin, while the rest
# of the ink is clear of it, is the desk around a sheet photographed on it or a corner in a shadow
# (`_around_the_page`).
AROUND_RUN = 0.5
AROUND_SMALL = 0.25
AROUND_MARGIN = 0.05
# Images this many pixels or more on their short side may be photos of a sheet, with a shadow or a desk along
# their border; a light region SHEET_SHARE of such an image, thicker than any stroke, is a sheet, and the
# strokes are dark on it (`_dark_strokes`).
PHOTO_SIDE = 100
SHEET_SHARE = 0.15
# Darkness is measured against the paper where it lies, or against this share of most of the paper's
# brightness where that is less (a desk far darker than the sheet).
DIM_PAPER = 0.4
# Ink as dark as this percentile of the strokes' darkness, or darker, is full strength (1.0), as the cores of
# MNIST's strokes are; fainter ink is scaled to match.
FULL_INK_PERCENTILE = 90
# Ruled and squared paper: a straight horizontal or vertical run of "ink" at least LINE_LENGTH of the
# image's side and at most LINE_WIDTH of its short side thick, fainter than LINE_SHARE of the darkest ink,
# is a printed line, not a stroke.
LINE_LENGTH = 1 / 3
LINE_SHARE = 0.5
LINE_FILL = 0.8
LINE_WIDTH = 0.015
# A page photographed askew: its lines may run up to this many degrees off the image's rows or columns.
LINE_TILT = 6.0
# A larger image is read on a copy this many pixels on its short side (box-filtered): a phone photo's
# digits are still hundreds of pixels tall there, and its filters cost a tenth as much (a 15-megapixel
# photo of three digits took 4.5 s at full size; benchmarks/README.md).
WORK_SIDE = 1024
# More parts than this is texture or noise, not a number.
MAX_PARTS = 12
# A part is weak when the model is less sure than this that it is its digit (digit score times top
# probability), or small when it is under this share of the parts' median height; such a part is joined
# to a neighbour at most MERGE_GAP heights away when together they read surer.
WEAK = 0.5
SMALL_PART = 0.5
COMB_SURE = 0.9
COMB_ASPECT = 1.1
MERGE_GAP = 0.25
# A part that no neighbour takes and that is smaller than this share of the tallest part's height in both
# directions is a mark, not a digit: a click of the pen beside a digit, a full stop, a speck. Fitted to
# 20x20 on its own, a dot is a filled disc, which the model reads as a sure 0.
MARK = 0.25
# Window strokes whose ink is no bigger than this many pen widths both ways are dots (clicks of the pen).
# A drawing of several dots and nothing else is one part that is not a digit: each dot, fitted alone,
# would read as a sure 0, and MARK leaves out only dots beside something bigger.
DOT = 2.0
# Window strokes reach at most this many window sides from the origin: room for a long number, while the
# canvas they are drawn on for reading stays a few thousand pixels (pixel coordinates passed by mistake
# would ask for a canvas of gigapixels).
MAX_UNITS = 16.0
# A cut must leave two sides surer than the whole by this much: halves of a slanted 1, or an 8 and its
# tail, each read as a sure digit, barely surer than the sure whole.
SPLIT_MARGIN = 0.01
# A digit is written in at most this many strokes: a group's window strokes are cut into digits of up to
# this many strokes each (`_cut_run`), each at least this sure alone; less sure than COMB_SURE, as the
# cuts at pen lifts must also leave digits side by side (chosen on development seeds, benchmarks/README.md).
DIGIT_STROKES = 10
LIFT_SURE = 0.7
# Digits written one after another reach back over each other by less than this share of the narrower one's
# width: further than two parts split anywhere (2 MERGE_OVERLAP), as a 1 written close to a 2's tail does.
RUN_OVERLAP = 0.75
# Among other digits, a digit-sized part is far likelier to be a digit than a drawing on its own is: the
# odds that it is one are taken as this many times the odds the threshold was set for (a digit score of
# 0.5 becomes 1/129; chosen on development seeds, benchmarks/README.md). Most parts that are not digits
# score lower still and stay '?'; a part drawn alone is unaffected.
NUMBER_ODDS = 128.0

Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive), in the input's pixels


@dataclasses.dataclass(frozen=True)
class DigitReading:
  digit: int  # 0-9, or NOT_A_DIGIT
  probs: np.ndarray  # [10] calibrated digit probabilities
  digit_score: float
  box: Box
  model_input: np.ndarray | None = dataclasses.field(default=None, repr=False)  # [28, 28, 1], what the model saw


@dataclasses.dataclass(frozen=True)
class NumberReading:
  text: str  # the digits read, with '?' for a part that is not a digit; '' for an empty input
  digits: tuple[DigitReading, ...]
  confidence: float  # probability that every digit is read right: the product of the top probabilities

  @property
  def is_number(self) -> bool:
    return bool(self.text) and '?' not in self.text


def _merge_boxes(boxes: list[Box]) -> list[list[int]]:
  """Groups of box indices, left to right, joining boxes that overlap horizontally."""
  order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0] + boxes[i][2]) / 2)
  groups: list[list[int]] = []
  spans: list[list[float]] = []
  for i in order:
    left, _, right, _ = boxes[i]
    if spans:
      g_left, g_right = spans[-1]
      overlap = min(right, g_right) - max(left, g_left)
      if overlap >= MERGE_OVERLAP * max(1, min(right - left, g_right - g_left)):
        groups[-1].append(i)
        spans[-1] = [min(left, g_left), max(right, g_right)]
        continue
    groups.append([i])
    spans.append([left, right])
  return groups


def _union(boxes: Sequence[Box]) -> Box:
  return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def check_strokes(strokes: Strokes) -> None:
  """Raises ValueError, naming the fix, unless every stroke is a sequence of (x, y) points of finite numbers
  within MAX_UNITS window sides of the origin (the window's side is 1)."""
  for stroke in strokes:
    try:  # Fails for a number, text, flat or ragged coordinates, and points of other than two numbers.
      xy = np.asarray(stroke, np.float64).reshape(len(stroke), 2)
    except (TypeError, ValueError) as e:
      raise ValueError(f'each stroke must be a list of (x, y) points, got {str(stroke)[:40]}') from e
    bad = ~(np.isfinite(xy).all(1) & (np.abs(xy) <= MAX_UNITS).all(1))
    if bad.any():
      x, y = xy[np.argmax(bad)]
      raise ValueError(f'stroke point ({x:g}, {y:g}) is not in window units: the window\'s side is 1 and points '
                       f'lie within {MAX_UNITS:g} of 0; divide pixel coordinates by the canvas side')


def _wide_size(strokes: Strokes, scale: int) -> tuple[int, int]:
  """(width, height) in pixels of the canvas that holds `strokes` at `scale` pixels per unit."""
  points = [p for stroke in strokes for p in stroke]
  width = max(1, int(np.ceil(max(x for x, _ in points) * scale)) + 8)
  height = max(1, int(np.ceil(max(y for _, y in points) * scale)) + 8)
  return max(width, scale), max(height, scale)


def render_wide(strokes: Strokes, scale: int = RENDER_SIZE) -> Image.Image:
  """Strokes in canvas units (the window's side is 1; a wide canvas runs past x = 1) drawn at `scale`
  pixels per unit with the window's pen: each digit gets the pixels the window would give it alone."""
  width, height = _wide_size(strokes, scale)
  return render_strokes(strokes, scale, width=width, height=height)


def _stroke_pieces(strokes: Strokes, scale: int = RENDER_SIZE) -> list[tuple[Box, np.ndarray]]:
  """(box, ink crop) of each window stroke, drawn alone with the window's pen at the pixels it has in the
  whole drawing, so the strokes of a digit paste back into exactly the digit the window renders."""
  strokes = [s for s in strokes if len(s)]
  if not strokes:
    return []
  width, height = _wide_size(strokes, scale)
  pen = pen_width(strokes, scale)  # The whole drawing's: each stroke drawn alone as it is drawn in it.
  reach = pen / 2 + 2  # How far the pen's ink reaches beyond a stroke's points.
  pieces = []
  for stroke in strokes:
    xy = np.asarray(stroke, np.float64) * scale
    left, top = max(0, int(xy[:, 0].min() - reach)), max(0, int(xy[:, 1].min() - reach))
    right, bottom = min(width, int(xy[:, 0].max() + reach) + 1), min(height, int(xy[:, 1].max() + reach) + 1)
    if right <= left or bottom <= top:
      continue  # Drawn entirely off the canvas.
    image = render_strokes([stroke], scale, width=width, height=height, pen=pen).crop((left, top, right, bottom))
    ink = 1.0 - np.asarray(image, np.float32) / 255.0
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size:
      box = (left + int(cols[0]), top + int(rows[0]), left + int(cols[-1]) + 1, top + int(rows[-1]) + 1)
      pieces.append((box, ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]))
  return pieces


def ink_of_image(image: Image.Image | np.ndarray) -> np.ndarray:
  """Darkness of each pixel relative to the paper around it, in [0, 1], 0 where it is not ink.

  The paper's brightness is a high percentile of the brightness over a window a third of the image's
  short side (on a copy PAPER_SIDE pixels on its short side): strokes cover a minority of such a window,
  so the estimate is the paper's, lit as it is there, and uneven light and soft shadows cancel. Where ink
  fills much of the window (a bold or filled digit), the paper is estimated again from the pixels clear of
  that ink. The paper is never brighter than a grey closing of the image, which follows a shadow's sharp
  edge or the edge of a sheet on a desk (`_shadow_paper`); a desk along the image's edges around a sheet
  is left out (`_around_the_page`). Ink is what Otsu's threshold finds darker than that; its soft edges are
  kept, as MNIST's strokes have them. A light-on-dark image (as MNIST) is turned round first
  (`_dark_strokes`). An image over WORK_SIDE pixels on its short side is read on a copy that size, and the
  map has the copy's shape.
  """
  from scipy import ndimage

  from digitrec_jax.preprocess import _to_grayscale, has_alpha, looks_inverted
  if has_alpha(image):  # The opaque pixels are the strokes.
    inverted = looks_inverted(image)
    gray = _to_grayscale(image, background=255 if inverted else 0)
  else:
    gray = _to_grayscale(image, background=255)
    inverted = _dark_strokes(gray)
  if not inverted:
    gray = 1.0 - gray
  if min(gray.shape) > WORK_SIDE:
    gray = _shrunk(gray, WORK_SIDE / min(gray.shape))
  step = max(1, min(gray.shape) // 96)
  # The percentile filter's cost grows with the window's area times the pixels: on the full image it took
  # 0.9 s for one digit's photo, at PAPER_SIDE about 30 ms, with the same readings (benchmarks/README.md).
  shrink = min(1.0, PAPER_SIDE / min(gray.shape))
  small = _shrunk(gray, shrink)
  window = max(5, min(small.shape) // 3) | 1
  paper = ndimage.percentile_filter(small, PAPER_PERCENTILE, size=window, mode='nearest')
  paper = ndimage.uniform_filter(paper, size=max(3, window // 2), mode='nearest')  # No blocky edges.
  shadow = _shadow_paper(gray)
  dark = _darkness(gray, paper, shadow)
  if dark.max() < MIN_CONTRAST:
    return np.zeros_like(dark)
  # Where ink fills most of the window (a bold or filled stroke), the percentile is the ink's own: its
  # middle came out pale. The paper is estimated again from the pixels clear of that first ink, its
  # enclosed pale middles filled in, only.
  first = _shrunk((dark >= max(_otsu(dark), MIN_CONTRAST) / 2).astype(np.float32), shrink) > PAPER_INK
  clear = ~ndimage.binary_fill_holes(ndimage.binary_dilation(first))
  weight = ndimage.gaussian_filter(clear.astype(np.float32), window / 2, mode='nearest')
  seen = ndimage.gaussian_filter(np.where(clear, small, 0.0).astype(np.float32), window / 2, mode='nearest')
  paper = np.where(weight > PAPER_CLEAR, seen / np.maximum(weight, PAPER_CLEAR), paper).astype(np.float32)
  dark = _darkness(gray, paper, shadow)
  if dark.max() < MIN_CONTRAST:
    return np.zeros_like(dark)
  threshold = max(_otsu(dark), MIN_CONTRAST)
  floor = threshold / 2
  core = dark >= threshold
  # A page's ruled lines can outnumber a small digit's pixels and pull Otsu's threshold down to theirs.
  lines = _faint_lines(dark >= floor, dark, core) if core.any() else np.zeros_like(core)
  # A desk or table around the sheet is darker than the paper along the image's edges: left out, and the
  # threshold found again without it, when the rest of the ink lies clear of the edges. (Without the
  # page's lines: a digit that touches the squares of squared paper is one component with them.)
  around = _around_the_page((dark >= floor) & ~lines, core & ~lines)
  if around.any():
    dark = np.where(around, 0.0, dark).astype(np.float32)
    threshold = max(_otsu(dark), MIN_CONTRAST)
    floor = threshold / 2
    core = dark >= threshold
    lines = _faint_lines(dark >= floor, dark, core) if core.any() else lines
  core &= ~lines
  if not core.any():
    return np.zeros_like(dark)
  # Faint ink (a grey pencil, a dim photo) is scaled up to full strength, as MNIST's strokes are; the
  # anti-aliased rim next to the strokes (down to half the threshold) stays, fading out.
  full = float(np.percentile(dark[core], FULL_INK_PERCENTILE))
  rim = ndimage.binary_dilation(core, iterations=max(1, step)) & (dark >= floor) & ~lines
  return np.where(rim, np.clip((dark - floor) / max(full - floor, 1e-3), 0.0, 1.0), 0.0).astype(np.float32)


def _shadow_paper(gray: np.ndarray) -> np.ndarray:
  """The paper's brightness as a grey closing of `gray` follows it: by a square larger than any stroke, so
  the strokes are filled in with the paper around them while a step in the light (a shadow's sharp edge,
  the edge of the sheet on a desk) stays where it is. Inside ink larger than the square that the image's
  edges do not cut (a filled digit), where the closing is SHADOW_DEPTH darker than most of the paper, it
  is +inf: that ink keeps the smooth estimate."""
  from scipy import ndimage
  # Strokes are thinner than a third of the short side, or a sixth of the long one (a tightly cropped 1).
  square = max(3, min(gray.shape) // 3, max(gray.shape) // 6) | 1
  closed = ndimage.grey_closing(gray, size=(square, square), mode='nearest')
  labels, n = ndimage.label(closed < (1 - SHADOW_DEPTH) * np.percentile(closed, 90))
  edge = border(labels)
  inside = np.setdiff1d(np.arange(1, n + 1), edge)
  if inside.size:
    blots = ndimage.binary_dilation(np.isin(labels, inside), iterations=max(2, square // 16))
    closed = np.where(blots, np.inf, closed)
  return closed.astype(np.float32)


def _around_the_page(mask: np.ndarray, core: np.ndarray) -> np.ndarray:
  """The pixels of `mask` (all ink, rims included) in components within AROUND_MARGIN of the short side of
  the image's edges that either lie along the edges for at least AROUND_RUN of their own longest side (a
  desk or table around a sheet photographed on it, a corner cut off by a shadow's edge) or are under
  AROUND_SMALL of the size of the largest component clear of that margin (a sliver of desk along the
  sheet's edge), when the rest of the ink's `core` is clear of the margin; an empty mask otherwise. A
  digit that meets an edge with a stroke's end stays, and digits cropped tightly come near the edges
  themselves and keep a bar that lies along one."""
  from scipy import ndimage
  labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
  margin = max(1, int(AROUND_MARGIN * min(mask.shape)))
  band = np.ones_like(mask)
  band[margin:-margin, margin:-margin] = False
  near = np.bincount(labels[band], minlength=n + 1) > 0
  contact = np.bincount(border(labels), minlength=n + 1)
  longest = np.array([0] + [max(s.stop - s.start for s in box) for box in ndimage.find_objects(labels)])
  sizes = np.bincount(labels.ravel(), minlength=n + 1)
  near[0] = False
  inner = sizes[1:][~near[1:]]
  if inner.size == 0:
    return np.zeros_like(mask)
  around = np.isin(labels, np.flatnonzero(
      near & ((contact >= AROUND_RUN * longest) | (sizes < AROUND_SMALL * inner.max()))))
  rest = core & ~around
  if not around.any() or not rest.any() or (rest & band).any():
    return np.zeros_like(mask)
  return around


def _dark_strokes(gray: np.ndarray) -> bool:
  """Whether an image (brightness [H, W]) holds dark strokes on a light ground: half of its border is light,
  or, in an image PHOTO_SIDE pixels or more on its short side, a quarter of its border or half of all its
  pixels are light, or a light region thicker than any stroke covers SHEET_SHARE of it (a sheet
  photographed on a desk: a square a third of the short side fits in it, on a copy PAPER_SIDE pixels on
  its short side). A shadow over most of a photo's border, or a desk all round a sheet, leaves one of these
  light. A smaller image is a digit's crop, judged by its border alone: a bold light digit cropped tightly
  on black has light all round its border and fills half of it."""
  from scipy import ndimage
  edge = border(gray)
  if float(np.median(edge)) > 0.5:
    return True
  if min(gray.shape) < PHOTO_SIDE:
    return False
  if float(np.percentile(edge, 75)) > 0.5 or float(np.median(gray)) > 0.5:
    return True
  small = _shrunk(gray, min(1.0, PAPER_SIDE / min(gray.shape)))
  square = max(3, min(small.shape) // 3)
  sheet = ndimage.binary_opening(small > max(_otsu(small), 0.5), structure=np.ones((square, square)))
  return float(sheet.mean()) >= SHEET_SHARE


def _darkness(gray: np.ndarray, paper: np.ndarray, shadow: np.ndarray) -> np.ndarray:
  """How much darker than the paper each pixel is, as a share of the paper's brightness; `paper` is
  estimated on a smaller copy and is scaled up to `gray`'s shape, and is no brighter than `shadow`
  (`_shadow_paper`, at `gray`'s shape)."""
  paper = np.minimum(
      np.asarray(Image.fromarray(paper).resize(gray.shape[::-1], Image.Resampling.BILINEAR), np.float32), shadow)
  paper = np.maximum(paper, gray)  # Nothing is brighter than the paper it lies on.
  # Relative to the paper lit as it is there, but never to less than DIM_PAPER of most of it: sensor noise
  # on a dark desk is no ink.
  least = max(0.05, DIM_PAPER * float(np.percentile(paper, 90)))
  return np.clip((paper - gray) / np.maximum(paper, least), 0.0, 1.0)


def _shrunk(gray: np.ndarray, scale: float) -> np.ndarray:
  """A float image box-filtered down by `scale` <= 1 (each side at least 1 pixel)."""
  size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
  return np.asarray(Image.fromarray(gray, mode='F').resize(size, Image.Resampling.BOX), np.float32)


def _faint_lines(mask: np.ndarray, dark: np.ndarray, core: np.ndarray) -> np.ndarray:
  """Pixels of `mask` on straight runs LINE_LENGTH of the image long, along its rows or its columns up to
  LINE_TILT askew, at most LINE_WIDTH of its short side thick, and their blurred edges, fainter than
  LINE_SHARE of the darkest ink (the 99th percentile of `dark` over the `core` pixels): the lines of ruled
  or squared paper, photographed straight or at a slant. A digit's own long bar is as dark as its other
  strokes and stays; the edge of a long stroke is no line (the stroke is thick across it); the ink where
  a stroke crosses a line stays."""
  from scipy import ndimage
  thickest = max(3, round(LINE_WIDTH * min(mask.shape)))
  lines = _lines_along_rows(mask, thickest) | _lines_along_rows(mask.T, thickest).T
  if not lines.any():
    return lines
  lines = ndimage.binary_dilation(lines, iterations=2) & mask  # The rows or columns blurred along a line.
  return lines & (dark < LINE_SHARE * float(np.percentile(dark[core], 99)))


def _row_slope(mask: np.ndarray) -> float:
  """The slope (rows per column, within LINE_TILT) along which the pixels of `mask` line up best: where
  their counts per slanted row are most uneven (the sum of the squared counts is largest). Tried a column's
  drift across the whole width apart, coarse first."""
  rows, cols = np.nonzero(mask)
  if rows.size == 0:
    return 0.0
  stride = max(1, rows.size // 50_000)  # Enough pixels to find the lines, a bounded cost.
  rows, cols = rows[::stride], cols[::stride]
  limit, fine = np.tan(np.radians(LINE_TILT)), 1.0 / mask.shape[1]

  def best(slopes):
    spread = [np.square(np.bincount(rows - np.round(cols * k).astype(int) + mask.shape[1])).sum() for k in slopes]
    return float(slopes[int(np.argmax(spread))])

  coarse = best(np.arange(-limit, limit + fine, 4 * fine))
  return best(np.arange(coarse - 3 * fine, coarse + 3.5 * fine, fine))


def _lines_along_rows(mask: np.ndarray, thickest: int) -> np.ndarray:
  """Pixels of `mask` on lines along its rows (up to LINE_TILT askew) LINE_LENGTH of its width long and
  at most `thickest` pixels thick: the mask is sheared so that its lines run level, searched, and
  sheared back."""
  height, width = mask.shape
  offsets = np.round(np.arange(width) * _row_slope(mask)).astype(int)
  offsets -= offsets.min()
  top = offsets.max()
  # Row r of column c moves to r - offsets[c] + top: a line of that slope becomes one row. Columns with
  # one offset are contiguous, so the shear is a slice copy per offset.
  starts = np.flatnonzero(np.diff(offsets, prepend=-1))
  spans = [(int(a), int(b), top - int(offsets[a])) for a, b in zip(starts, [*starts[1:], width])]
  level = np.zeros((height + top, width), bool)
  outside = np.ones_like(level)  # Sheared in from beyond the image's top or bottom edge.
  for a, b, shift in spans:
    level[shift:shift + height, a:b] = mask[:, a:b]
    outside[shift:shift + height, a:b] = False
  # Noise and JPEG break a faint line up: a fifth of the run may be missing. A slanted line that runs out
  # of the image through its top or bottom is taken to go on beyond it.
  found = (_runs(level | outside, max(3, int(width * LINE_LENGTH)), 1, LINE_FILL) & level
           & ~_runs(level, thickest + 1, 0, 1.0))
  out = np.empty_like(mask)
  for a, b, shift in spans:
    out[:, a:b] = found[shift:shift + height, a:b]
  return out


def _runs(mask: np.ndarray, length: int, axis: int, fill: float) -> np.ndarray:
  """Pixels of `mask` inside a straight run along `axis` at least `length` long, of which `fill` is in
  `mask`: an opening with a flat 1-D window (erode, then dilate), in O(pixels) whatever its length."""
  from scipy import ndimage
  length |= 1
  inside = ndimage.uniform_filter1d(mask.astype(np.float32), length, axis=axis, mode='constant') >= fill - 1e-4
  return mask & (ndimage.uniform_filter1d(inside.astype(np.float32), length, axis=axis, mode='constant') > 1e-4)


def _otsu(values: np.ndarray) -> float:
  hist, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
  centres = (edges[:-1] + edges[1:]) / 2
  w0 = np.cumsum(hist)
  w1 = w0[-1] - w0
  m0 = np.cumsum(hist * centres) / np.maximum(w0, 1)
  m1 = (np.sum(hist * centres) - np.cumsum(hist * centres)) / np.maximum(w1, 1)
  between = w0 * w1 * (m0 - m1) ** 2
  return float(edges[int(np.argmax(between)) + 1])


def _image_parts(ink: np.ndarray) -> list[tuple[Box, np.ndarray]]:
  """(box, ink crop) of each connected component of an ink map, specks (dust, JPEG noise) left out."""
  from scipy import ndimage
  labels, n = ndimage.label(ink > 0, structure=np.ones((3, 3)))
  if n == 0:
    return []
  sizes = ndimage.sum_labels(np.ones_like(ink), labels, index=np.arange(1, n + 1))
  slices = ndimage.find_objects(labels)
  # A component fainter than preprocess_drawing's ink threshold all over would be a blank part.
  strongest = ndimage.maximum(ink, labels, index=np.arange(1, n + 1))
  keep = [i for i in range(n) if sizes[i] >= SPECK * sizes.max() and strongest[i] > INK_THRESHOLD]
  # Each component's own ink only, not a neighbour reaching into its box.
  return [((slices[i][1].start, slices[i][0].start, slices[i][1].stop, slices[i][0].stop),
           np.where(labels[slices[i]] == i + 1, ink[slices[i]], 0.0)) for i in keep]


def _scaled(box: Box, sx: float, sy: float) -> Box:
  """`box` with its x scaled by `sx` and its y by `sy`, rounded to pixels."""
  return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


def _group(pieces: list[tuple[Box, np.ndarray]]) -> list[list[tuple[Box, np.ndarray]]]:
  """Pieces (an image's components, or runs of window strokes) grouped where they overlap horizontally (a 5
  and its separate top bar), left to right, each group's pieces in their order (window strokes in the
  order they were drawn, for `_cut_run`)."""
  return [[pieces[i] for i in sorted(group)] for group in _merge_boxes([box for box, _ in pieces])]


def _touching(a: tuple[Box, np.ndarray], b: tuple[Box, np.ndarray]) -> bool:
  """Whether two pieces' inks share a pixel."""
  (a_box, a_ink), (b_box, b_ink) = a, b
  left, top = max(a_box[0], b_box[0]), max(a_box[1], b_box[1])
  right, bottom = min(a_box[2], b_box[2]), min(a_box[3], b_box[3])
  if right <= left or bottom <= top:
    return False
  a_part = a_ink[top - a_box[1]:bottom - a_box[1], left - a_box[0]:right - a_box[0]]
  b_part = b_ink[top - b_box[1]:bottom - b_box[1], left - b_box[0]:right - b_box[0]]
  return bool(((a_part > 0.5) & (b_part > 0.5)).any())


def _group_strokes(pieces: list[tuple[Box, np.ndarray]]) -> list[list[tuple[Box, np.ndarray]]]:
  """Window strokes grouped into digits, using the order they were drawn in: a stroke whose ink touches
  the strokes drawn just before it is one piece with them (a 4's second stroke, a 7's hook, a 5's bar
  written at once), as touching ink is one component in an image, however little their boxes overlap;
  then pieces that overlap horizontally are grouped (`_group`)."""
  runs: list[list[tuple[Box, np.ndarray]]] = []
  for piece in pieces:
    if runs and any(_touching(before, piece) for before in runs[-1]):
      runs[-1].append(piece)
    else:
      runs.append([piece])
  return _group([_run(run) for run in runs])


class _Run(tuple):
  """A piece (box, ink crop) pasted from window strokes that touch one after another, which keeps the
  strokes (`.strokes`, in the order they were drawn): digits written touching are cut apart at a pen
  lift, never through a stroke."""


def _run(strokes: Sequence[tuple[Box, np.ndarray]]) -> _Run:
  run = _Run(_paste(strokes))
  run.strokes = list(strokes)
  return run


def _read(predictor, crop: np.ndarray, box: Box = (0, 0, 0, 0)) -> DigitReading:
  """The model's reading of one part (one image at a time: the shape the predictor compiled for the
  window); the trial cuts of `_split_touching` need no box."""
  x = preprocess_drawing(crop, invert=False)
  result = predictor.classify(x[None])
  return DigitReading(int(result.digits[0]), result.probs[0], float(result.digit_scores[0]), box, x)


def _shifted_threshold(threshold: float, odds: float) -> float:
  """The digit score at which a part is a digit when the odds that it is one are `odds` times those the
  threshold was set for."""
  return threshold / (threshold + odds * (1.0 - threshold))


def _sureness(reading: DigitReading, threshold: float, odds: float = 1.0) -> float:
  """How sure the model is that a part is its digit: the digit score (at `odds` times the odds, as among
  other digits) times the top probability; 0 for a part that is not a digit at those odds."""
  score = reading.digit_score
  if score < _shifted_threshold(threshold, odds):
    return 0.0
  return odds * score / (odds * score + 1.0 - score) * float(reading.probs.max())


def _split_touching(predictor, pieces: Sequence[tuple[Box, np.ndarray]], odds: float = 1.0, depth: int = 0
                    ) -> list[tuple[Box, np.ndarray]]:
  """A part (its components' boxes and crops) too wide for one digit, cut where the two sides read best
  (recognition-based segmentation).

  Candidate cuts are columns in the middle half (in image ink, not window strokes), and for a part of
  several components, each split of its components into a left and a right group (two digits whose strokes
  overlap in x, as the bar of one 5 reaching over the next). A cut is kept only when both sides read as
  digits more surely than the whole does, by SPLIT_MARGIN; among other parts, both are judged at
  NUMBER_ODDS (`odds`). Window strokes (`_Run`s) are never cut through: the group's strokes, in the order
  they were drawn, are first cut at pen lifts into the digits written one after another (`_cut_run`), and
  only then, if that leaves the group whole, split between its runs.
  """
  box, crop = _paste(pieces)
  height, width = crop.shape
  wide = width > SPLIT_ASPECT * height and width >= 8
  strokes = [stroke for piece in pieces for stroke in getattr(piece, 'strokes', [])]
  if len(strokes) > 1 and all(isinstance(piece, _Run) for piece in pieces):
    # Window strokes, in the order they were drawn: first cut into the digits written one after another,
    # across the runs (two digits written touching, and a third whose box reaches over theirs).
    cut = _cut_run(predictor, pieces[0] if len(pieces) == 1 else _run(strokes))
    if len(cut) > 1 or len(pieces) == 1:
      return cut
  columns = not any(isinstance(piece, _Run) for piece in pieces)  # Window strokes are cut between strokes.
  if depth > 3 or not (wide or len(pieces) > 1):
    return [(box, crop)]
  left, top, right, bottom = box
  ink_columns = crop.sum(0)
  lo, hi = int(width * 0.25), int(width * 0.75)
  # The columns with least ink, where a thin join is, and an even comb across the middle half: two
  # round digits (00) touch where the ink is thickest, and only the reading finds that cut.
  # Cuts off the thin joins are tried only on parts wider than COMB_ASPECT heights, and must leave two
  # sure digits (COMB_SURE): a wide digit has many cuts into two shapes that each read as something.
  thin = np.argsort(ink_columns[lo:hi], kind='stable')[:6] + lo if wide and columns else np.array([], int)
  comb = [c for c in range(lo, hi, max(1, (hi - lo) // 16)) if c not in set(thin.tolist())
          ] if width > COMB_ASPECT * height and columns else []
  column_cut = lambda c: ([((left, top, left + c, bottom), crop[:, :c])],
                          [((left + c, top, right, bottom), crop[:, c:])])
  # Splits between pieces, into two sides that may be two digits (`_side_by_side`). Each side keeps its
  # pieces in their order: window strokes in the order they were drawn, for `_cut_run`.
  by_centre = sorted(range(len(pieces)), key=lambda k: pieces[k][0][0] + pieces[k][0][2])
  splits = [([pieces[i] for i in sorted(by_centre[:k])], [pieces[i] for i in sorted(by_centre[k:])])
            for k in range(1, len(pieces))]

  def apart(a, b):
    return _side_by_side(*(_union([p for p, _ in side]) for side in (a, b)), height, loose=wide)

  # (left side, right side, the least sureness at `odds` of each side).
  candidates = ([(*column_cut(int(c)), 0.0) for c in thin]
                + [(*split, 0.0) for split in splits if apart(*split)]
                + [(*column_cut(int(c)), COMB_SURE) for c in comb])
  if not candidates:
    return [(box, crop)]
  whole = _sureness(_read(predictor, crop), predictor.threshold, odds)
  best, best_sides = whole + SPLIT_MARGIN, None
  for left_pieces, right_pieces, floor in candidates:
    sides = [_paste(left_pieces)[1], _paste(right_pieces)[1]]
    if sides[0].max() <= INK_THRESHOLD or sides[1].max() <= INK_THRESHOLD:
      continue
    readings = [_read(predictor, side) for side in sides]
    sure = min(_sureness(reading, predictor.threshold, odds) for reading in readings)
    if sure > best and sure >= floor:
      best, best_sides = sure, (left_pieces, right_pieces)
  if best_sides is None:
    return [(box, crop)]
  return [part for side in best_sides for part in _split_touching(predictor, side, odds, depth + 1)]


def _side_by_side(a: Box, b: Box, height: int, loose: bool = False, overlap: float = 2 * MERGE_OVERLAP) -> bool:
  """Whether two sides of a part `height` high may be two digits: both digit-sized (SMALL_PART of the
  height: a 7's crossbar or a 5's top bar is never a digit of its own), and lying mostly side by side, their
  boxes overlapping in x by less than `overlap` of the narrower one's width (two slanted digits), not
  one inside the other (the two strokes of a 4); `loose` (a part too wide for one digit) waives the
  second."""
  if min(a[3] - a[1], b[3] - b[1]) < SMALL_PART * height:
    return False
  return loose or min(a[2], b[2]) - max(a[0], b[0]) < overlap * min(a[2] - a[0], b[2] - b[0])


def _written_after(a: Box, b: Box, height: int) -> bool:
  """Whether `b` may be the digit written after `a`: to its right, as a number is written, and side by side
  with it (`_side_by_side`), reaching back over it by less than RUN_OVERLAP of the narrower one's width."""
  return a[0] + a[2] < b[0] + b[2] and _side_by_side(a, b, height, overlap=RUN_OVERLAP)


def _cut_run(predictor, run: _Run) -> list[_Run]:
  """Window strokes in the order they were drawn (a run of touching strokes, or a group's runs one after
  another) cut at pen lifts into the digits written one after another, or kept whole (recognition-based
  segmentation over the order the strokes were drawn in).

  Of the ways to cut it into runs of consecutive strokes (at most DIGIT_STROKES each), each a sure digit on
  its own (LIFT_SURE: a digit's own strokes often read as two) and written after the one before it, to its
  right and side by side (`_written_after`), the one whose least sure digit is surest is kept when that
  digit is surer than the whole run, by SPLIT_MARGIN. All are judged at the odds of a part alone: among
  other digits (NUMBER_ODDS) a whole the model doubts, two digits written touching read as one at 0.9, is as
  sure as any two sides. Three digits written touching are cut in one go: no single cut leaves two sure
  digits.
  """
  strokes, threshold = run.strokes, predictor.threshold
  height = run[0][3] - run[0][1]
  parts = {}

  def part(i: int, j: int) -> tuple[_Run, float]:  # Strokes i..j-1 as one run, and how sure a digit alone.
    if (i, j) not in parts:
      piece = _run(strokes[i:j])
      parts[i, j] = piece, _sureness(_read(predictor, piece[1]), threshold)
    return parts[i, j]

  # ending[j]: for each way to cut strokes[:j] into sure digits, (its least sureness, where its digits start).
  ending: dict[int, list[tuple[float, list[int]]]] = {j: [] for j in range(len(strokes) + 1)}
  for j in range(1, len(strokes) + 1):
    for i in range(max(0, j - DIGIT_STROKES), j):
      if (i, j) == (0, len(strokes)) or (i and not ending[i]):
        continue  # The whole run, judged below; strokes[:i] that are no sure digits end no digit here.
      piece, sure = part(i, j)
      if sure < LIFT_SURE:
        continue
      if i == 0:
        ending[j].append((sure, [0]))
        continue
      ways = [(min(least, sure), starts + [i]) for least, starts in ending[i]
              if _written_after(part(starts[-1], i)[0][0], piece[0], height)]
      if ways:
        ending[j].append(max(ways, key=lambda way: way[0]))
  if not ending[len(strokes)]:
    return [run]
  least, starts = max(ending[len(strokes)], key=lambda way: way[0])
  if least <= _sureness(_read(predictor, run[1]), threshold) + SPLIT_MARGIN:
    return [run]
  bounds = starts + [len(strokes)]
  return [part(i, j)[0] for i, j in zip(bounds, bounds[1:])]


def _paste(parts: Sequence[tuple[Box, np.ndarray]]) -> tuple[Box, np.ndarray]:
  """One part made of several: their union box, holding each one's ink."""
  if len(parts) == 1:
    return parts[0]
  box = _union([b for b, _ in parts])
  out = np.zeros((box[3] - box[1], box[2] - box[0]), np.float32)
  for (left, top, right, bottom), crop in parts:
    region = out[top - box[1]:bottom - box[1], left - box[0]:right - box[0]]
    np.maximum(region, crop, out=region)
  return box, out


def _merge_weak(predictor, parts: list[tuple[Box, np.ndarray]], odds: float = 1.0) -> list[DigitReading]:
  """The readings of `parts`, neighbours joined where one of them is not a sure digit on its own (a stroke
  broken by the scan, a bar written apart) and together they read as a surer digit; the best join first."""
  parts = list(parts)
  readings = [_read(predictor, crop, box) for box, crop in parts]
  while len(parts) > 1:
    height = float(np.median([b[3] - b[1] for b, _ in parts]))
    best = None
    for i in range(len(parts) - 1):
      (a_box, _), (b_box, _) = parts[i], parts[i + 1]
      small = [(b[3] - b[1]) < SMALL_PART * height for b in (a_box, b_box)]
      # A small part counts as no digit at all: a speck beside a 1 reads as a sure little 1.
      sure = [0.0 if small[k] else _sureness(readings[i + k], predictor.threshold, odds) for k in range(2)]
      if min(sure) >= WEAK and not any(small):
        continue
      if b_box[0] - a_box[2] > MERGE_GAP * height:
        continue
      merged = _paste(parts[i:i + 2])
      reading = _read(predictor, merged[1], merged[0])
      merged_sure = _sureness(reading, predictor.threshold, odds)
      gain = merged_sure - min(sure)
      if merged_sure >= WEAK and gain > 0 and (best is None or gain > best[0]):
        best = (gain, i, merged, reading)
    if best is None:
      break
    _, i, merged, reading = best
    parts[i:i + 2] = [merged]
    readings[i:i + 2] = [reading]
  return readings


def _longest_side(box: Box) -> int:
  return max(box[2] - box[0], box[3] - box[1])


def _without_marks(readings: Sequence[DigitReading]) -> tuple[DigitReading, ...]:
  """`readings` less the marks (MARK): parts far smaller than the tallest one in both directions."""
  tallest = max(r.box[3] - r.box[1] for r in readings)
  return tuple(r for r in readings if _longest_side(r.box) >= MARK * tallest)


def _in_context(readings: Sequence[DigitReading], threshold: float) -> tuple[DigitReading, ...]:
  """`readings` with the parts turned away as not digits read as digits where, among the number's other
  digits, their digit score clears the threshold shifted by NUMBER_ODDS and they are digit-sized."""
  if all(r.digit == NOT_A_DIGIT for r in readings):
    return tuple(readings)
  height = float(np.median([r.box[3] - r.box[1] for r in readings]))
  shifted = _shifted_threshold(threshold, NUMBER_ODDS)
  return tuple(
      dataclasses.replace(r, digit=int(np.argmax(r.probs)))
      if r.digit == NOT_A_DIGIT and r.digit_score >= shifted and r.box[3] - r.box[1] >= SMALL_PART * height
      else r for r in readings)


def _at_edge(box: Box, shape: tuple[int, int]) -> bool:
  return box[0] <= 0 or box[1] <= 0 or box[2] >= shape[1] or box[3] >= shape[0]


def _without_cut_off(readings: Sequence[DigitReading], shape: tuple[int, int]) -> tuple[DigitReading, ...]:
  """`readings` of an image of `shape` less the parts that meet its edge and are no digits even among
  digits, when every digit lies clear of the edges: ink cut off by the photo's edge beside writing that is
  whole is what lies around the writing (a desk beyond the sheet, a shadow's corner), as `_around_the_page`
  finds for ink along the edges."""
  digits = [r for r in readings if r.digit != NOT_A_DIGIT]
  if not digits or any(_at_edge(r.box, shape) for r in digits):
    return tuple(readings)
  return tuple(r for r in readings if r.digit != NOT_A_DIGIT or not _at_edge(r.box, shape))


def _not_a_number(box: Box) -> NumberReading:
  """The reading of a drawing that is one part, `box`, and not a digit: texture, noise, dots alone."""
  return NumberReading('?', (DigitReading(NOT_A_DIGIT, np.full(10, 0.1, np.float32), 0.0, box),), 0.0)


def read_number(predictor, drawing: Image.Image | np.ndarray | Strokes) -> NumberReading:
  """The number in `drawing`: window strokes (lists of (x, y) in canvas units), or an image (a drawing
  dark on light, a scan or a photo, PIL or numpy). One drawn digit reads exactly as `predictor.classify`
  of `preprocess_drawing(render_strokes(strokes))`; an empty input reads as ''.

  Strokes and images take the same path once they are pieces (a stroke, or a connected component of
  ink): pieces overlapping in x are grouped, groups too wide for a digit are cut where the sides read
  best, weak neighbours are joined, marks (MARK) are left out, and doubtful digits among digits are read
  at NUMBER_ODDS; in an image, a part cut off by its edge that is no digit is left out beside writing clear
  of the edges (`_without_cut_off`). Strokes that are not (x, y) points in window units raise ValueError
  (`check_strokes`).
  """
  if isinstance(drawing, (list, tuple)):
    check_strokes(drawing)
    groups, size, scale = _group_strokes(_stroke_pieces(drawing)), None, (1.0, 1.0)
    if len(groups) > 1:
      boxes, dot = [_union([box for box, _ in pieces]) for pieces in groups], DOT * pen_width(drawing, RENDER_SIZE)
      if all(_longest_side(box) <= dot for box in boxes):
        return _not_a_number(_union(boxes))
  else:
    ink = ink_of_image(drawing)
    groups = _group(_image_parts(ink))
    size = (drawing.height, drawing.width) if isinstance(drawing, Image.Image) else np.shape(drawing)[:2]
    # A large image is read on a smaller copy (WORK_SIDE): boxes are given in the input's pixels.
    scale = (size[1] / ink.shape[1], size[0] / ink.shape[0])
  if not groups:
    return NumberReading('', (), 0.0)
  # Among other parts, each one is judged at the odds of a digit among digits.
  odds = NUMBER_ODDS if len(groups) > 1 else 1.0
  # Window strokes are cut between strokes only (`_Run`): cut through a stroke, a wide 9 or 2 read as a
  # digit and a 1 (benchmarks/README.md).
  parts = ([piece for pieces in groups for piece in _split_touching(predictor, pieces, odds)]
           if len(groups) <= MAX_PARTS else [_paste(pieces) for pieces in groups])
  if len(parts) > MAX_PARTS and size is not None:  # Texture or noise: one part that is not a digit.
    return _not_a_number((0, 0, size[1], size[0]))
  digits = _without_marks(_merge_weak(predictor, parts, odds))
  if len(digits) > 1:
    digits = _in_context(digits, predictor.threshold)
    if size is not None:
      digits = _without_cut_off(digits, ink.shape)
  if scale != (1.0, 1.0):
    digits = tuple(dataclasses.replace(d, box=_scaled(d.box, *scale)) for d in digits)
  text = ''.join('?' if d.digit == NOT_A_DIGIT else str(d.digit) for d in digits)
  confidence = 0.0 if '?' in text else float(np.prod([d.probs.max() for d in digits]))
  return NumberReading(text, digits, confidence)
