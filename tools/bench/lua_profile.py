#!/usr/bin/env python3
"""lua_profile.py - summarize the Lua stacks build/bench_policy --profile wrote.

    tools/bench/lua_profile.py FILE [--top N]

Prints the share of samples by function (inclusive: anywhere on the stack;
self: the innermost Lua function) and by line (the innermost line). Time in
a C function falls on the Lua line that called it."""
import sys
from collections import Counter


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    top = 30
    if "--top" in args:
        top = int(args[args.index("--top") + 1])
    incl, self_fn, lines = Counter(), Counter(), Counter()
    total = 0
    with open(args[0]) as f:
        for row in f:
            stack, _, n = row.rstrip("\n").rpartition(" ")
            n = int(n)
            total += n
            frames = stack.split(";")
            seen = set()
            for fr in frames:
                fn = fr.replace(" (line)", "")
                if fr.endswith(" (line)"):
                    src, _, rest = fn.partition(":")
                    fn = src + ":" + rest.split(" ", 1)[1] if " " in rest else fn
                if fn not in seen:
                    seen.add(fn)
                    incl[fn] += n
            leaf = frames[-1]
            lines[leaf.replace(" (line)", "")] += n
            src, _, rest = leaf.replace(" (line)", "").partition(":")
            self_fn[src + ":" + (rest.split(" ", 1)[1] if " " in rest else rest)] += n
    if total == 0:
        print("no samples")
        return 1
    for title, c in (("inclusive, by function", incl), ("self, by function", self_fn),
                     ("self, by line", lines)):
        print(f"\n{title} ({total} samples)")
        for k, v in c.most_common(top):
            print(f"{100.0 * v / total:6.1f} %  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
