#!/bin/sh
# Rewrites the "Flags" block of README.md (between the serve-help markers) from the built
# binary's `inferneo serve --help`, so the documented flags never drift from the real ones.
#   scripts/readme-flags.sh [path/to/inferneo]     (default: build/inferneo)
set -e
cd "$(dirname "$0")/.."
BIN=${1:-build/inferneo}
help=$("$BIN" serve --help)
/usr/bin/python3 - "$help" <<'PY'
import re, sys
help_text = sys.argv[1]
path = "README.md"
s = open(path).read()
block = "<!-- serve-help:begin -->\n```text\n" + help_text.rstrip("\n") + "\n```\n<!-- serve-help:end -->"
new, n = re.subn(r"<!-- serve-help:begin -->.*?<!-- serve-help:end -->", lambda m: block, s,
                 flags=re.S)
if n != 1:
    sys.exit("README.md: serve-help markers not found")
open(path, "w").write(new)
PY
