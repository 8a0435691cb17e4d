"""Regenerates docs/gui.png and docs/gui_why.png: draws a 7 in the real window and grabs the screen.

Run under a virtual display:  xvfb-run -s '-screen 0 800x600x24' python docs/screenshot.py
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


def main() -> None:
  root = tk.Tk()
  root.geometry('640x580+0+0')
  app = gui.DigitApp(root, load_predictor())
  root.update()
  side = app._side
  points = [(0.25, 0.2), (0.5, 0.19), (0.73, 0.21), (0.6, 0.45), (0.5, 0.65), (0.42, 0.85)]
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
  crop = f'{root.winfo_width()}x{root.winfo_height()}+0+0'
  for name, why in (('gui.png', False), ('gui_why.png', True)):
    app.why_var.set(why)
    app._draw_preview()
    root.update()
    out = ROOT / 'docs' / name
    subprocess.run(['import', '-window', 'root', '-crop', crop, str(out)], check=True)
    print(f'{out}: shows {app.digit_var.get()} ({app.message_var.get()}), why overlay {why}')
  root.destroy()


if __name__ == '__main__':
  main()
