#!/usr/bin/env python3
"""Lists the closure calls that rust-lang/rust#155241 can miscompile, in optimised MIR.

An affected rustc miscompiles a closure (or any `Fn*` call) whose by-value argument tuple is a
`copy` of a local: GVN writes `call(.., copy _6)` where two calls get equal arguments, and the
callee then writes to the caller's storage when the argument is passed through a hidden
pointer (types larger than two registers). Pointer-, integer- and char-sized arguments travel
in registers and are not affected.

usage, from the workspace root (a separate target directory; a few minutes cold):
    CARGO_TARGET_DIR=target/mir RUSTFLAGS="--emit=mir,link" \\
        cargo build --release --examples --all-features
    python3 tests/miscompile/scan_mir.py target/mir/release/deps/*.mir target/mir/release/examples/*.mir
Prints one line per site: crate | function | argument tuple type.
"""
import collections
import re
import sys

CALL = re.compile(
    r"as (?:Fn|FnMut|FnOnce|AsyncFn\w*)<\((.*)\)>>::\w+\((?:move|copy) _\d+, copy (_\d+)\)"
)
DECL = re.compile(r"\s*let (?:mut )?(_\d+): (.*);")


def scan(path, hits):
    name = path.rsplit("/", 1)[-1].split("-")[0]
    function, body = None, []

    def flush():
        if function is None:
            return
        types = {m.group(1): m.group(2) for m in map(DECL.match, body) if m}
        for line in body:
            m = CALL.search(line)
            if m:
                hits[(name, function[:110], types.get(m.group(2), "?")[:90])] += 1

    for line in open(path, errors="replace"):
        if line.startswith(("fn ", "const ", "static ")):
            flush()
            function, body = line.strip(), []
        else:
            body.append(line)
    flush()


hits = collections.Counter()
for path in sys.argv[1:]:
    scan(path, hits)
for (crate, function, args), count in sorted(hits.items()):
    print(f"{crate} | {function} | {args}" + (f" (x{count})" if count > 1 else ""))
print(f"{len(hits)} site(s) in {len(sys.argv) - 1} MIR file(s)", file=sys.stderr)
