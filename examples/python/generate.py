"""``python generate.py BUNDLE LABEL SEED OUT.pgm [--variant fp32] [--truncation PSI] [--guard]``

One digit from a verified bundle with the torch-free runtime, written as a binary PGM (P5): the
same bytes as ``node examples/node/generate.mjs BUNDLE LABEL SEED OUT.pgm``. Needs only numpy,
onnxruntime and edgegen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgegen.runtime import Generator
from edgegen.runtime.errors import EdgegenError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("label", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--truncation", type=float, default=None)
    parser.add_argument("--guard", action="store_true", help="redraw a digit the evaluator rejects")
    args = parser.parse_args()
    try:
        g = Generator.load(args.bundle)
        run = g.run([args.label], args.seed, variant=args.variant, truncation=args.truncation,
                    guard=args.guard)
    except EdgegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    image = run.images[0]
    args.out.write_bytes(f"P5\n{image.shape[1]} {image.shape[0]}\n255\n".encode() + image.tobytes())
    verdict = ""
    if run.accepted is not None:
        verdict = (f"; evaluator: {int(run.predicted[0])} (p = {float(run.prob[0]):.3f}), "
                   f"{'accepted' if run.accepted[0] else 'rejected'} after "
                   f"{int(run.attempts[0])} redraws")
    print(f"wrote {args.out}: label {args.label}, seed {args.seed}, {args.variant}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
