#!/usr/bin/env python3
"""The house rules of src/, checked: each top-level module imports only the modules below it in
ORDER (docs/ARCHITECTURE.md explains the order), there are no more top-level modules than
that, and no source file in src/ or cli/src/ runs past MAX_LINES. Prints every breach and
exits 1 on any."""
import os
import re
import sys

ORDER = ["util", "spiffe", "error", "material", "peer", "policy", "handshake", "verify",
         "live", "rotate", "server", "client", "config", "dev"]
MAX_LINES = 800

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
src = os.path.join(root, "src")
problems = []

path_re = re.compile(r"\bcrate::(\{[^;]*?\}|[a-z_][a-z0-9_]*)", re.S)
for folder, _, names in os.walk(src):
    for name in names:
        if not name.endswith(".rs"):
            continue
        path = os.path.join(folder, name)
        rel = os.path.relpath(path, src)
        top = rel[:-3].split(os.sep)[0]
        if top == "lib":
            continue
        if top not in ORDER:
            problems.append(f"src/{rel}: module `{top}` is not in the import order of .ci/layout.py")
            continue
        text = open(path, encoding="utf-8").read()
        # Unit tests may reach anywhere; doc and comment lines name paths without importing.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+\w+", text)[0]
        code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
        for m in path_re.finditer(code):
            group = m.group(1)
            used = re.findall(r"(?:^|[{,\s])([a-z_][a-z0-9_]*)(?=\s*(?:::|,|\}|$))",
                              group.strip("{}")) if group.startswith("{") else [group]
            for other in used:
                if other in ORDER and ORDER.index(other) > ORDER.index(top):
                    problems.append(f"src/{rel}: `{top}` imports `{other}`, which sits above it")

for base in ("src", os.path.join("cli", "src")):
    for folder, _, names in os.walk(os.path.join(root, base)):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(folder, name)
                lines = sum(1 for _ in open(path, encoding="utf-8"))
                if lines > MAX_LINES:
                    rel = os.path.relpath(path, root)
                    problems.append(f"{rel}: {lines} lines; split it by concept (at most {MAX_LINES})")

for p in sorted(set(problems)):
    print(p)
sys.exit(1 if problems else 0)
