"""`python gui.py`: the same as `digitrec-gui`; see digitrec_jax/gui.py."""

from digitrec_jax.gui import run

if __name__ == '__main__':
  run()
