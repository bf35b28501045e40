#!/usr/bin/env python3
"""Writes one script's section of bench/RESULTS.md: `results_section.py NAME FILE` reads the
section's text on stdin and puts it between `<!-- NAME: start -->` and `<!-- NAME: end -->`,
replacing an older one or appending it, and leaves the rest of the file as it is."""
import re
import sys

name, path = sys.argv[1], sys.argv[2]
table = sys.stdin.read().rstrip("\n")
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
block = f"{start}\n{table}\n{end}"
if start in text:
    text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
