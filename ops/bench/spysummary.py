"""Summarise a py-spy raw (collapsed stacks) file: the functions holding the most
samples, by self time and by total time.

    python -m ops.bench.spysummary /tmp/profile.txt [--top 25]
"""

from __future__ import annotations

import argparse
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(args.path) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip().rpartition(" ")
            count = int(count_text)
            frames = stack.split(";")
            samples += count
            own[frames[-1]] += count
            for frame in set(frames):
                total[frame] += count
    print(f"{samples} samples; self time:")
    for frame, count in own.most_common(args.top):
        print(f"{100 * count / samples:6.1f}%  {frame}")
    print("total time (with callees):")
    for frame, count in total.most_common(args.top):
        print(f"{100 * count / samples:6.1f}%  {frame}")


if __name__ == "__main__":
    main()
