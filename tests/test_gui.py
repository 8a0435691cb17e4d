"""The window, in a real Tk under Xvfb: strokes drawn with event_generate are recognised."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from digitrec_jax.predict import CHECKPOINT_FIX

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def display():
  if shutil.which('Xvfb') is None:
    pytest.skip('Xvfb is not installed (.ci/run installs it)')
  number = 90 + os.getpid() % 50
  server = subprocess.Popen(['Xvfb', f':{number}', '-screen', '0', '1024x768x24', '-nolisten', 'tcp'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 10
  while not os.path.exists(f'/tmp/.X11-unix/X{number}') and time.time() < deadline:
    time.sleep(0.05)
  old = os.environ.get('DISPLAY')
  os.environ['DISPLAY'] = f':{number}'
  yield f':{number}'
  server.terminate()
  server.wait()
  if old is None:
    os.environ.pop('DISPLAY', None)
  else:
    os.environ['DISPLAY'] = old


@pytest.fixture(scope='module')
def predictor():
  from digitrec_jax import load_predictor
  return load_predictor()  # The shipped checkpoint.


@pytest.fixture
def app(display, predictor):
  import tkinter as tk

  from digitrec_jax import gui
  root = tk.Tk()
  root.geometry('900x580')
  application = gui.DigitApp(root, predictor)
  root.update()
  yield application
  root.destroy()


def _stroke(app, points):
  """Drags the mouse through `points` given in [0, 1] canvas units."""
  side = app._side
  xy = [(round(x * side), round(y * side)) for x, y in points]
  app.canvas.event_generate('<ButtonPress-1>', x=xy[0][0], y=xy[0][1])
  for x, y in xy[1:]:
    app.canvas.event_generate('<B1-Motion>', x=x, y=y)
  app.canvas.event_generate('<ButtonRelease-1>', x=xy[-1][0], y=xy[-1][1])


def _settle(app, seconds=1.0):
  """Lets the debounced prediction fire through Tk's event loop."""
  end = time.time() + seconds
  while time.time() < end:
    app.root.update()
    time.sleep(0.01)


def _line(a, b, n=12):
  return [(a[0] + (b[0] - a[0]) * t / n, a[1] + (b[1] - a[1]) * t / n) for t in range(n + 1)]


DIGITS = {
    '1': [_line((0.5, 0.15), (0.48, 0.85))],
    '0': [[(0.5 + 0.22 * math.sin(2 * math.pi * t / 40), 0.5 - 0.33 * math.cos(2 * math.pi * t / 40))
           for t in range(41)]],
    '7': [_line((0.25, 0.2), (0.72, 0.2)) + _line((0.72, 0.2), (0.4, 0.85))[1:]],
}


@pytest.mark.parametrize('digit', sorted(DIGITS))
def test_drawn_digit_is_recognised_live(app, digit):
  assert app.message_var.get() == 'Draw a digit' and app.digit_var.get() == ''
  for stroke in DIGITS[digit]:
    _stroke(app, stroke)
  _settle(app)  # No explicit predict: the live, debounced one must have run.
  assert app.digit_var.get() == digit, (app.message_var.get(), app.probabilities)
  assert app.message_var.get().endswith('% confident')
  np.testing.assert_allclose(app.probabilities.sum(), 1.0, rtol=1e-5)
  assert app.model_input.shape == (28, 28, 1)
  assert len(app.bars.find_all()) == 40  # Label, frame, bar and value for each class.
  assert len(app.preview.find_all()) == 1


def test_undo_and_clear_reset_the_display(app):
  _stroke(app, DIGITS['1'][0])
  _settle(app, 0.3)
  _stroke(app, _line((0.2, 0.5), (0.8, 0.5)))
  _settle(app, 0.3)
  assert len(app.strokes) == 2
  app.root.event_generate('<Control-z>')
  _settle(app, 0.2)
  assert len(app.strokes) == 1 and app.digit_var.get() == '1'
  app.root.event_generate('<Escape>')
  _settle(app, 0.2)
  assert app.strokes == [] and app.digit_var.get() == '' and app.message_var.get() == 'Draw a digit'
  assert app.probabilities is None and app.preview.find_all() == ()


def test_a_drawn_x_is_not_a_digit_and_greys_the_bars(app):
  _stroke(app, _line((0.25, 0.2), (0.75, 0.8)))
  _stroke(app, _line((0.75, 0.2), (0.25, 0.8)))
  _settle(app)
  assert app.digit_var.get() == 'not a digit', (app.message_var.get(), app.probabilities)
  assert app.message_var.get().endswith('% like a digit')
  fills = {app.bars.itemcget(item, 'fill') for item in app.bars.find_all() if app.bars.type(item) == 'rectangle'}
  assert fills <= {'', '#bbb'}  # Frames have no fill; every bar is grey.
  app.root.event_generate('<Escape>')
  _settle(app, 0.2)
  assert app.digit_var.get() == '' and app.message_var.get() == 'Draw a digit'


def test_a_number_drawn_side_by_side_is_read_with_a_box_per_digit(app):
  four = [_line((0.45, 0.2), (0.3, 0.6)) + _line((0.3, 0.6), (0.65, 0.6))[1:], _line((0.55, 0.3), (0.55, 0.85))]
  two = [[(1.3 + 0.15 * math.cos(a), 0.35 + 0.14 * math.sin(a)) for a in np.linspace(math.pi, 2.2 * math.pi, 14)]
         + _line((1.42, 0.42), (1.22, 0.82))[1:] + _line((1.22, 0.82), (1.5, 0.82))[1:]]
  for stroke in four + two:
    _stroke(app, stroke)
  _settle(app)
  assert app.digit_var.get() == '42', (app.message_var.get(), app.reading)
  assert re.fullmatch(r'4 \d+\.\d%  2 \d+\.\d%', app.message_var.get())
  boxes = [i for i in app.canvas.find_withtag('box') if app.canvas.type(i) == 'rectangle']
  assert len(boxes) == 2
  # Each box is labelled with its digit and probability as the panel words them.
  labels = [app.canvas.itemcget(i, 'text') for i in app.canvas.find_withtag('box') if app.canvas.type(i) == 'text']
  assert labels == app.message_var.get().split('  ')
  (l1, _, r1, _), (l2, _, r2, _) = (app.canvas.coords(b) for b in boxes)
  assert r1 < l2 + 0.1 * app._side  # Side by side, left to right.
  app.root.event_generate('<Control-z>')  # Undo the 2: back to one digit, no boxes.
  _settle(app, 0.3)
  assert app.digit_var.get() == '4' and not app.canvas.find_withtag('box')


def test_single_dot_does_not_crash(app):
  _stroke(app, [(0.5, 0.5)])
  _settle(app, 0.3)
  assert app.model_input is not None and app.probabilities is not None


def test_status_line_describes_the_checkpoint(app, predictor):
  step = predictor.info['step']
  assert f'pretrained/best/{step} · step {step} · test accuracy 99.' in app.status_var.get()
  assert app.status_var.get().endswith(' · cpu')


def test_gui_without_display_is_one_line():
  env = {k: v for k, v in os.environ.items() if k != 'DISPLAY'}
  out = subprocess.run([sys.executable, str(ROOT / 'gui.py')], env=env, capture_output=True, text=True, timeout=120)
  assert out.returncode == 1
  assert out.stderr.count('\n') == 1
  assert out.stderr.startswith('error: no display (') and 'xvfb-run' in out.stderr


def test_gui_with_bad_checkpoint_exits_nonzero(display, tmp_path):
  out = subprocess.run([sys.executable, str(ROOT / 'gui.py'), '--checkpoint', str(tmp_path / 'nope')],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 1
  assert out.stderr == f'error: checkpoint dir {tmp_path / "nope"} does not exist; {CHECKPOINT_FIX}\n'


def test_gui_starts_and_reports_ready(display):
  out = subprocess.run([sys.executable, str(ROOT / 'gui.py'), '--print-ready', '--exit-when-ready'],
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert out.stdout.startswith('ready ') and float(out.stdout.split()[1]) > 0


def test_why_overlay_toggles_and_shows_a_saliency_map(app):
  _stroke(app, DIGITS['7'][0])
  _settle(app, 0.3)
  assert app.saliency is None
  app.why_var.set(True)
  app._draw_preview()  # What the checkbutton's command runs.
  assert app.saliency.shape == (28, 28)
  assert np.all(np.isfinite(app.saliency)) and np.abs(app.saliency).max() > 0
  photo = app._preview_photo
  assert (photo.width(), photo.height()) == (112, 112)
  _stroke(app, _line((0.3, 0.5), (0.7, 0.5)))
  _settle(app, 0.3)  # Live predictions keep the overlay up to date.
  assert app.saliency is not None
  app.why_var.set(False)
  app._draw_preview()
  assert app.saliency is None and len(app.preview.find_all()) == 1
