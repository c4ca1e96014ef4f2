"""Reads `cargo metadata` on stdin; fails if a package in the lock file declares a newer
rust-version than a published workspace member does, so that the declared minimum stays one
that the whole dependency tree (dev-dependencies included) accepts."""
import json
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
published = [p for p in meta["packages"] if p["id"] in members and p.get("publish") != []]
problems = []
for member in published:
    declared = member.get("rust_version")
    if not declared:
        problems.append(f'{member["name"]}: Cargo.toml declares no rust-version')
        continue
    for p in meta["packages"]:
        needs = p.get("rust_version")
        if p["id"] not in members and needs and version(needs) > version(declared):
            problems.append(
                f'{member["name"]} declares rust-version {declared}, '
                f'but {p["name"]} {p["version"]} needs {needs}'
            )
    print(f'{member["name"]}: rust-version {declared}')
if problems:
    sys.exit("\n".join(problems))
print("every package in the lock file accepts it")
