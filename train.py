"""`python train.py --steps N`: the same as `digitrec-train`; see digitrec_jax/train.py."""

from digitrec_jax.train import run

if __name__ == '__main__':
  run()
