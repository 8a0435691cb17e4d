"""Draw a digit and see it recognised live: `digitrec-gui [--checkpoint DIR]` (or `python gui.py`).

Tk only: strokes -> render_strokes -> preprocess_drawing -> Predictor -> widgets.
"""

from __future__ import annotations

import argparse
import sys
import time

_T0 = time.perf_counter()

import tkinter as tk  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from digitrec_jax.model import NOT_A_DIGIT  # noqa: E402
from digitrec_jax.numbers import read_number  # noqa: E402
from digitrec_jax.preprocess import RENDER_SIZE, STROKE_WIDTH  # noqa: E402

# Below this calibrated top probability the window says it is unsure between digits.
UNSURE_BELOW = 0.6
NOT_A_DIGIT_TEXT = 'not a digit'
_DIGIT_FONT, _REJECT_FONT = ('TkDefaultFont', 64, 'bold'), ('TkDefaultFont', 22, 'bold')
MIN_CANVAS = 280
CANVAS_ASPECT = 2  # The canvas is twice as wide as tall, so a number fits.
PREVIEW_SCALE = 4
DEBOUNCE_MS = 60
EMPTY_TEXT = 'Draw a digit'


def status_text(info: dict) -> str:
  """The status line: checkpoint, step, its test accuracy and the device."""
  import jax
  accuracy = info.get('test_accuracy')
  acc = f'test accuracy {accuracy:.2%}' if accuracy is not None else 'test accuracy unknown'
  device = jax.devices()[0]
  path = Path(info['path'])
  if path.is_relative_to(Path.cwd()):
    path = path.relative_to(Path.cwd())
  kind = f' ({device.device_kind})' if device.device_kind != device.platform else ''
  return f'{path} · step {info["step"]} · {acc} · {device.platform}{kind}'


class DigitApp:
  """The window: a drawing canvas, the prediction with ten bars, a preview of the model input."""

  def __init__(self, root: tk.Tk, predictor):
    self.root, self.predictor = root, predictor
    self.strokes: list[list[tuple[float, float]]] = []
    self.probabilities: np.ndarray | None = None
    self.is_digit = False  # Whether the model names the drawing as a digit (the bars are greyed if not).
    self.reading = None  # The NumberReading of the strokes.
    self.model_input: np.ndarray | None = None
    self.saliency: np.ndarray | None = None
    self._pending = None
    self._side = MIN_CANVAS

    root.title('digitrec_jax')
    root.minsize(CANVAS_ASPECT * MIN_CANVAS + 320, 580)  # Tall enough for the whole side panel.
    root.columnconfigure(0, weight=1)
    root.rowconfigure(0, weight=1)
    # The canvas keeps its 2:1 shape, room for a number: the largest such rectangle in its holder. A
    # single digit is drawn in a square of side `_side`, as before; strokes are in units of that side.
    holder = tk.Frame(root, width=CANVAS_ASPECT * MIN_CANVAS, height=MIN_CANVAS)
    holder.grid(row=0, column=0, sticky='nsew', padx=8, pady=8)
    self.canvas = tk.Canvas(holder, width=CANVAS_ASPECT * MIN_CANVAS, height=MIN_CANVAS, bg='white',
                            cursor='pencil', highlightthickness=0)
    self.canvas.place(x=0, y=0, width=CANVAS_ASPECT * MIN_CANVAS, height=MIN_CANVAS)

    def fit(e):
      side = max(MIN_CANVAS, min(e.width // CANVAS_ASPECT, e.height))
      self.canvas.place_configure(width=CANVAS_ASPECT * side, height=side)
    holder.bind('<Configure>', fit)

    panel = tk.Frame(root)
    panel.grid(row=0, column=1, sticky='n', padx=8, pady=8)
    self.digit_var = tk.StringVar(value='')
    self.message_var = tk.StringVar(value=EMPTY_TEXT)
    self.digit_label = tk.Label(panel, textvariable=self.digit_var, font=_DIGIT_FONT, height=1)
    self.digit_label.pack()
    tk.Label(panel, textvariable=self.message_var, font=('TkDefaultFont', 12)).pack(pady=(0, 8))
    self.bars = tk.Canvas(panel, width=260, height=10 * 20, highlightthickness=0)
    self.bars.pack()
    self.why_var = tk.BooleanVar(value=False)
    preview_title = tk.Frame(panel)
    preview_title.pack(pady=(10, 0))
    tk.Label(preview_title, text='model input (28x28)').pack(side='left')
    tk.Checkbutton(preview_title, text='Why?', variable=self.why_var, command=self._draw_preview).pack(side='left')
    self.preview = tk.Canvas(panel, width=28 * PREVIEW_SCALE, height=28 * PREVIEW_SCALE, bg='black',
                             highlightthickness=0)
    self.preview.pack()
    buttons = tk.Frame(panel)
    buttons.pack(pady=10)
    tk.Button(buttons, text='Predict', command=self.predict).pack(side='left')
    tk.Button(buttons, text='Undo', command=self.undo).pack(side='left')
    tk.Button(buttons, text='Clear', command=self.clear).pack(side='left')
    self.status_var = tk.StringVar(value=status_text(predictor.info))
    tk.Label(root, textvariable=self.status_var, anchor='w', justify='left', fg='#555', wraplength=560).grid(
        row=1, column=0, columnspan=2, sticky='we', padx=8, pady=(0, 6))

    self.canvas.bind('<ButtonPress-1>', self._on_press)
    self.canvas.bind('<B1-Motion>', self._on_motion)
    self.canvas.bind('<ButtonRelease-1>', self._on_release)
    self.canvas.bind('<Configure>', self._on_resize)
    root.bind('<Return>', lambda e: self.predict())
    root.bind('<Escape>', lambda e: self.clear())
    root.bind('<Delete>', lambda e: self.clear())
    root.bind('<Control-z>', lambda e: self.undo())
    self._draw_bars()

  # Drawing.
  def _unit(self, event) -> tuple[float, float]:
    return (min(max(event.x / self._side, 0.0), float(CANVAS_ASPECT)), min(max(event.y / self._side, 0.0), 1.0))

  def _on_press(self, event):
    self.strokes.append([self._unit(event)])
    self._redraw_canvas()
    self._schedule()

  def _on_motion(self, event):
    if not self.strokes:
      return
    stroke = self.strokes[-1]
    stroke.append(self._unit(event))
    (x0, y0), (x1, y1) = stroke[-2], stroke[-1]
    s = self._side
    self.canvas.create_line(x0 * s, y0 * s, x1 * s, y1 * s, width=STROKE_WIDTH * s, fill='black',
                            capstyle='round', joinstyle='round', smooth=True)
    self._schedule()

  def _on_release(self, event):
    self._schedule()

  def _on_resize(self, event):
    self._side = max(1, min(event.width // CANVAS_ASPECT, event.height))
    self._redraw_canvas()

  def _redraw_canvas(self):
    self.canvas.delete('all')
    s, w = self._side, STROKE_WIDTH * self._side
    for stroke in self.strokes:
      points = [c * s for point in stroke for c in point]
      if len(points) >= 4:
        self.canvas.create_line(*points, width=w, fill='black', capstyle='round', joinstyle='round', smooth=True)
      x, y = points[0], points[1]
      self.canvas.create_oval(x - w / 2, y - w / 2, x + w / 2, y + w / 2, fill='black', outline='')
    self._draw_boxes()

  def _draw_boxes(self):
    """One box per digit, with its reading, when the drawing holds more than one."""
    self.canvas.delete('box')
    if self.reading is None or len(self.reading.digits) < 2:
      return
    k = self._side / RENDER_SIZE  # Boxes are in render pixels.
    for d in self.reading.digits:
      left, top, right, bottom = (c * k for c in d.box)
      colour = '#2a7' if d.digit != NOT_A_DIGIT else '#c33'
      self.canvas.create_rectangle(left, top, right, bottom, outline=colour, dash=(3, 2), tags='box')
      # One decimal, as the panel shows it: a box never says 100% where the panel says 99.9%.
      label = '?' if d.digit == NOT_A_DIGIT else f'{d.digit} {d.probs.max():.1%}'
      self.canvas.create_text(left + 2, max(top - 2, 10), text=label, anchor='sw', fill=colour, tags='box')

  # Editing.
  def clear(self):
    self.strokes.clear()
    self._redraw_canvas()
    self.predict()

  def undo(self):
    if self.strokes:
      self.strokes.pop()
    self._redraw_canvas()
    self.predict()

  # Prediction: debounced through after(), so it always runs on Tk's main thread.
  def _schedule(self):
    if self._pending is not None:
      self.root.after_cancel(self._pending)
    self._pending = self.root.after(DEBOUNCE_MS, self.predict)

  def predict(self):
    if self._pending is not None:
      self.root.after_cancel(self._pending)
      self._pending = None
    self.reading = read_number(self.predictor, self.strokes) if self.strokes else None
    self.digit_label.configure(font=_DIGIT_FONT)
    if self.reading is None or not self.reading.digits:
      self.reading = None
      self.probabilities, self.model_input, self.is_digit = None, None, False
      self.digit_var.set('')
      self.message_var.set(EMPTY_TEXT)
    else:
      digits = self.reading.digits
      # The bars and the preview show the least sure digit: the one to check.
      shown = min(digits, key=lambda d: (d.digit != NOT_A_DIGIT, d.digit_score * float(d.probs.max())))
      self.model_input, self.probabilities = shown.model_input, shown.probs
      self.is_digit = shown.digit != NOT_A_DIGIT
      top = int(np.argmax(self.probabilities))
      confidence = float(self.probabilities[top])
      if len(digits) > 1:
        self.digit_label.configure(font=_DIGIT_FONT if len(digits) <= 3 else _REJECT_FONT)
        self.digit_var.set(self.reading.text)
        self.message_var.set('  '.join('? not a digit' if d.digit == NOT_A_DIGIT else f'{d.digit} {d.probs.max():.1%}'
                                       for d in digits))
      elif not self.is_digit:
        # Letters, scribbles and digits still being drawn land here.
        self.digit_label.configure(font=_REJECT_FONT)
        self.digit_var.set(NOT_A_DIGIT_TEXT)
        self.message_var.set(f'{shown.digit_score:.0%} like a digit')
      elif confidence < UNSURE_BELOW:
        self.digit_var.set('?')
        self.message_var.set(f'unsure: maybe {top} ({confidence:.0%})')
      else:
        self.digit_var.set(str(top))
        self.message_var.set(f'{confidence:.1%} confident')
    self._draw_boxes()
    self._draw_bars()
    self._draw_preview()

  def _draw_bars(self):
    self.bars.delete('all')
    probs = self.probabilities if self.probabilities is not None else np.zeros(10)
    top = int(np.argmax(probs)) if self.probabilities is not None else -1
    for k in range(10):
      y = k * 20
      self.bars.create_text(10, y + 10, text=str(k), font=('TkDefaultFont', 11, 'bold'))
      self.bars.create_rectangle(24, y + 3, 24 + 160, y + 17, outline='#ccc')
      colour = ('#2a7' if k == top else '#69c') if self.is_digit else '#bbb'
      self.bars.create_rectangle(24, y + 3, 24 + 160 * float(probs[k]), y + 17, outline='', fill=colour)
      self.bars.create_text(258, y + 10, text=f'{probs[k]:.1%}', anchor='e')

  def _draw_preview(self):
    self.preview.delete('all')
    self.saliency = None
    if self.model_input is None:
      return
    gray = self.model_input[..., 0]
    if self.why_var.get():
      # Pixels whose change would most move the predicted class's logit glow red.
      self.saliency = self.predictor.saliency(self.model_input)
      heat = np.abs(self.saliency) / max(float(np.abs(self.saliency).max()), 1e-12)
      rgb = np.stack([np.maximum(gray, heat), gray * (1 - heat), gray * (1 - heat)], axis=-1)
      image = Image.fromarray((rgb * 255).astype(np.uint8), mode='RGB')
    else:
      image = Image.fromarray((gray * 255).astype(np.uint8))
    image = image.resize((28 * PREVIEW_SCALE, 28 * PREVIEW_SCALE), Image.Resampling.NEAREST)
    from PIL import ImageTk
    self._preview_photo = ImageTk.PhotoImage(image, master=self.root)  # Tk needs a live reference.
    self.preview.create_image(0, 0, image=self._preview_photo, anchor='nw')


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='digitrec-gui', description=__doc__.splitlines()[0])
  parser.add_argument('--checkpoint', default=None, help='run dir (default: the shipped model)')
  parser.add_argument('--print-ready', action='store_true', help='print seconds from start to window ready')
  parser.add_argument('--exit-when-ready', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  try:
    root = tk.Tk()
  except tk.TclError as e:
    print(f'error: no display ({e}); run digitrec-gui in a desktop session or under xvfb-run', file=sys.stderr)
    return 1
  from digitrec_jax.checkpoint import CheckpointError
  from digitrec_jax.predict import CHECKPOINT_FIX, load_predictor
  try:
    predictor = load_predictor(args.checkpoint)
  except CheckpointError as e:
    root.destroy()
    print(f'error: {e}; {CHECKPOINT_FIX}', file=sys.stderr)
    return 1
  DigitApp(root, predictor)

  def ready():
    if args.print_ready:
      print(f'ready {time.perf_counter() - _T0:.3f}', flush=True)
    if args.exit_when_ready:
      root.destroy()

  root.after_idle(ready)
  root.mainloop()
  return 0


def run() -> None:
  """Console-script entry point."""
  sys.exit(main())


if __name__ == '__main__':
  run()
