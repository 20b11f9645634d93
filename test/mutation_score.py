"""Print the kill rate of the last `mutmut run` per core module; fail below a minimum.

Used by `make mutation` (docs/TESTING.md). It reads mutmut's per-file result files
(mutants/<path>.meta, exit code per mutant) so the numbers are those of the run just done.
A mutant counts as killed if a test failed on it (or it timed out, i.e. it made a test
hang); "survived" and "no tests" both count as not killed.

Usage: python test/mutation_score.py [--min PERCENT] [--list]   (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CORE = Path("mutants/mdi_exit_ros/core")
DETECTED = {"killed", "timeout", "caught by type check"}


def load(core: Path = CORE) -> dict[str, dict[str, str]]:
    """Status of every mutant, by module file name."""
    out: dict[str, dict[str, str]] = {}
    for meta in sorted(core.glob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        out[meta.name.removesuffix(".meta")] = {
            name: status_by_exit_code[code] for name, code in codes.items()
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=90.0, help="minimum kill rate, percent")
    parser.add_argument("--list", action="store_true", help="list every mutant not killed")
    args = parser.parse_args(argv)
    results = load()
    if not results:
        print(f"no mutmut results under {CORE}: run `mutmut run` first", file=sys.stderr)
        return 2
    total = Counter[str]()
    print(f"{'module':<16}{'killed':>8}{'total':>8}{'rate':>9}  not killed")
    for module, statuses in results.items():
        counts = Counter(statuses.values())
        killed = sum(counts[s] for s in DETECTED)
        total.update(counts)
        rest = ", ".join(f"{s}: {n}" for s, n in sorted(counts.items()) if s not in DETECTED)
        rate = 100.0 * killed / len(statuses) if statuses else 100.0
        print(f"{module:<16}{killed:>8}{len(statuses):>8}{rate:>8.1f}%  {rest or '-'}")
    killed = sum(total[s] for s in DETECTED)
    n = sum(total.values())
    rate = 100.0 * killed / n
    print(f"{'all of core/':<16}{killed:>8}{n:>8}{rate:>8.1f}%")
    if total["not checked"]:
        print(f"warning: {total['not checked']} mutants were not checked", file=sys.stderr)
    if args.list:
        for statuses in results.values():
            for name, status in statuses.items():
                if status not in DETECTED:
                    print(f"  {status}: {name}")
    print(f"kill rate {killed}/{n} = {rate:.1f}% (minimum {args.min:.0f}%)")
    return 0 if rate >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
