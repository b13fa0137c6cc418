"""The README's flag list is `inferneo serve --help` verbatim (scripts/readme-flags.sh writes it),
and every endpoint the server routes is documented there."""
import os
import re
import subprocess

ROOT = os.environ.get("INFERNEO_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("INFERNEO_BIN") or os.path.join(ROOT, "build", "inferneo")


def readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_flags_block_is_serve_help():
    m = re.search(r"<!-- serve-help:begin -->\n```text\n(.*?)```\n<!-- serve-help:end -->",
                  readme(), re.S)
    assert m, "README.md has no serve-help block"
    help_text = subprocess.run([BIN, "serve", "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert m.group(1).rstrip("\n") == help_text.rstrip("\n"), (
        "README's flag list differs from `inferneo serve --help`: run scripts/readme-flags.sh")


def test_every_route_is_documented():
    src = open(os.path.join(ROOT, "src", "server", "http.c"), encoding="utf-8").read()
    routes = re.findall(r'\{"(/[a-z0-9/_-]*)", R_', src)
    assert routes
    text = readme()
    for r in routes:
        assert "`" + r in text or r + "`" in text or " " + r + " " in text, (
            "endpoint %s is not documented in README.md" % r)
