"""``edgegen-runtime``: the runtime distribution's console script (torch-free, argparse only).

    edgegen-runtime bench BUNDLE [--batch 1,8,64] [--json OUT]      the on-device benchmark
    edgegen-runtime generate BUNDLE LABEL SEED OUT.png|OUT.pgm       one image, Python's bytes

``bench`` is ``python -m edgegen.runtime.bench`` (see that module). A bad bundle or option is
an ``EdgegenError``: its message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgegen.runtime.errors import ConfigError, EdgegenError

USAGE = "usage: edgegen-runtime {bench,generate} ... (edgegen-runtime COMMAND --help)"


def _generate(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="edgegen-runtime generate",
                                description="Write one generated image (PNG or PGM/PPM).")
    p.add_argument("bundle", type=Path)
    p.add_argument("label", type=int)
    p.add_argument("seed", type=int)
    p.add_argument("out", type=Path, help="OUT.png or OUT.pgm")
    p.add_argument("--variant", default=None)
    p.add_argument("--truncation", type=float, default=None)
    p.add_argument("--public-key", type=Path, default=None)
    args = p.parse_args(argv)
    from edgegen.runtime import Generator
    from edgegen.runtime.fileio import atomic_write_bytes
    from edgegen.runtime.postprocess import encode_pgm, encode_png

    try:
        if args.out.suffix.lower() not in (".png", ".pgm", ".ppm"):
            raise ConfigError(f"{args.out}: expected a .png, .pgm or .ppm file name")
        g = Generator.load(args.bundle, public_key=args.public_key)
        image = g.generate([args.label], seed=args.seed, variant=args.variant,
                           truncation=args.truncation)[0]
        encode = encode_png if args.out.suffix.lower() == ".png" else encode_pgm
        atomic_write_bytes(args.out, encode(image))
    except EdgegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: label {args.label}, seed {args.seed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n\n" + (__doc__ or "").split("\n\n")[1])
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from edgegen.runtime.bench import main as bench_main

        return bench_main(rest)
    if command == "generate":
        return _generate(rest)
    print(f"edgegen-runtime: unknown command {command!r}\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
