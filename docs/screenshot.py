"""Regenerates docs/gui.png, docs/gui_why.png, docs/gui_number.png and docs/gui_not_a_digit.png: draws
in the real window and grabs the screen.

Run under a virtual display:  xvfb-run -s '-screen 0 1024x600x24' python docs/screenshot.py
(needs ImageMagick's `import`).
"""

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


import tkinter as tk  # noqa: E402

from digitrec_jax import gui  # noqa: E402
from digitrec_jax import load_predictor  # noqa: E402


SEVEN = [[(0.25, 0.2), (0.5, 0.19), (0.73, 0.21), (0.6, 0.45), (0.5, 0.65), (0.42, 0.85)]]
FORTY_TWO = [[(0.45, 0.2), (0.3, 0.6), (0.65, 0.6)], [(0.55, 0.3), (0.55, 0.85)],
             [(1.15, 0.3), (1.25, 0.2), (1.4, 0.22), (1.45, 0.35), (1.22, 0.82), (1.5, 0.82)]]
X = [[(0.3, 0.25), (0.7, 0.8)], [(0.7, 0.25), (0.3, 0.8)]]


def _draw(app, root, strokes):
  app.clear()
  side = app._side
  for points in strokes:
    xy = [(round(x * side), round(y * side)) for x, y in points]
    app.canvas.event_generate('<ButtonPress-1>', x=xy[0][0], y=xy[0][1])
    for (x0, y0), (x1, y1) in zip(xy, xy[1:]):
      for t in range(1, 9):
        app.canvas.event_generate('<B1-Motion>', x=x0 + (x1 - x0) * t // 8, y=y0 + (y1 - y0) * t // 8)
    app.canvas.event_generate('<ButtonRelease-1>', x=xy[-1][0], y=xy[-1][1])
  end = time.time() + 1.0
  while time.time() < end:
    root.update()
    time.sleep(0.01)


def main() -> None:
  root = tk.Tk()
  root.geometry('+0+0')  # The window's own size, as it opens.
  app = gui.DigitApp(root, load_predictor())
  root.update()
  crop = f'{root.winfo_width()}x{root.winfo_height()}+0+0'
  for name, strokes, why in (('gui.png', SEVEN, False), ('gui_why.png', SEVEN, True),
                             ('gui_number.png', FORTY_TWO, False), ('gui_not_a_digit.png', X, False)):
    _draw(app, root, strokes)
    app.why_var.set(why)
    app._draw_preview()
    root.update()
    out = ROOT / 'docs' / name
    subprocess.run(['import', '-window', 'root', '-crop', crop, str(out)], check=True)
    print(f'{out}: shows {app.digit_var.get()} ({app.message_var.get()}), why overlay {why}')
  root.destroy()


if __name__ == '__main__':
  main()
