"""Write a generated dataset with a learnable signal (tests/datagen.py) for trying --data runs without real data.

    python tools/make_dataset.py --out /tmp/shapes10 --classes 10 --per-class 100 25 --size 64
    python tools/make_dataset.py --out /tmp/cifar --format cifar10 --per-class 500 100

Class k's images are mostly one colour with a lighter square at a random place: any model
learns it within an epoch or two, so accuracy curves rise quickly. `--format imagefolder`
writes `OUT/train/<class>/*.png` and `OUT/val/<class>/*.png`; `cifar10`/`cifar100` write the
python-version batch files (32 x 32) under OUT.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import datagen  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write (created)")
    parser.add_argument("--format", choices=("imagefolder", "cifar10", "cifar100"), default="imagefolder")
    parser.add_argument("--classes", type=int, default=10, help="classes (imagefolder; cifar: 10 or 100)")
    parser.add_argument("--per-class", type=int, nargs=2, default=(100, 25), metavar=("TRAIN", "VAL"),
                        help="images per class in train and val (default: 100 25)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (imagefolder; default: 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.format == "imagefolder":
        root = datagen.make_image_folder(args.out, classes=args.classes, per_class=tuple(args.per_class),
                                         size=args.size, seed=args.seed)
        count = args.classes * sum(args.per_class)
    else:
        classes = 10 if args.format == "cifar10" else 100
        root = datagen.make_cifar(args.out, args.format, train=classes * args.per_class[0],
                                  test=classes * args.per_class[1], seed=args.seed)
        count = classes * sum(args.per_class)
    print(f"{count} images in {root} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
