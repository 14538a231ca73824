#!/usr/bin/env python3
"""Compares the public API of a crate in two rustdoc JSON files.

Every item reachable from the crate root (modules, re-exports, types,
fields, variants, traits, functions, constants, impls and their items) is
listed under its path with its signature, ids and spans left out. Blanket
impls come from other crates and are skipped. Prints what was added,
removed or changed, and exits 1 if anything was.

    api_diff.py BASELINE.json CANDIDATE.json
"""

import json
import re
import sys

# Keys that carry no API meaning (ids differ between builds), or that list
# children, which are listed under their own paths.
SKIP_KEYS = {"id", "span", "docs", "links", "crate_id", "items", "impls",
             "fields", "variants", "implementations"}


# Attributes as rustdoc prints them can quote source spans, which move when
# lines are added above them.
SPAN = re.compile(r"[\w./-]+\.rs:\d+:\d+: \d+:\d+ \(#\d+\)")


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in SKIP_KEYS}
    if isinstance(value, list):
        return [strip(v) for v in value]
    if isinstance(value, str):
        return SPAN.sub("<span>", value)
    return value


def type_name(ty):
    return json.dumps(strip(ty), sort_keys=True, separators=(",", ":"))


def api(path):
    doc = json.load(open(path))
    index = doc["index"]
    out = {}

    def record(key, kind, inner, item):
        sig = {"kind": kind, "inner": strip(inner), "visibility": item.get("visibility"),
               "deprecation": item.get("deprecation"), "attrs": strip(item.get("attrs"))}
        out[key] = json.dumps(sig, sort_keys=True)

    def walk(item_id, prefix, name=None, seen=frozenset()):
        item = index.get(str(item_id))
        if item is None or item_id in seen or item.get("visibility") not in ("public", "default"):
            return
        seen = seen | {item_id}
        kind, inner = next(iter(item["inner"].items()))
        name = name or item.get("name")
        key = f"{prefix}::{name}" if prefix else name
        if kind == "module":
            record(key, kind, inner, item)
            for child in inner["items"]:
                walk(child, key, seen=seen)
        elif kind == "use":
            record(key if inner["is_glob"] is False else f"{prefix}::*{inner['source']}",
                   kind, {"source": inner["source"], "is_glob": inner["is_glob"]}, item)
            if inner.get("id") is not None and not inner["is_glob"]:
                walk(inner["id"], prefix, name=inner["name"], seen=seen)
        elif kind == "impl":
            if inner.get("blanket_impl") is not None:
                return
            trait = inner.get("trait")
            impl_key = f"impl {type_name(trait) if trait else ''} for {type_name(inner['for'])}"
            record(f"{prefix} :: {impl_key}", kind, inner, item)
            for child in inner["items"]:
                walk(child, f"{prefix} :: {impl_key}", seen=seen)
        else:
            record(key, kind, inner, item)
            children = []
            if kind == "struct":
                children = inner["kind"].get("plain", {}).get("fields", []) + inner["kind"].get("tuple", [])
            elif kind in ("enum", "union"):
                children = inner.get("variants", []) + inner.get("fields", [])
            elif kind == "trait":
                children = inner["items"]
            elif kind == "variant" and isinstance(inner.get("kind"), dict):
                k = inner["kind"]
                children = k.get("struct", {}).get("fields", []) + (k.get("tuple") or [])
            for child in children:
                if child is not None:
                    walk(child, key, seen=seen)
            for impl_id in inner.get("impls", []):
                walk(impl_id, key, seen=seen)

    walk(doc["root"], "")
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old, new = api(sys.argv[1]), api(sys.argv[2])
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(k for k in old.keys() & new.keys() if old[k] != new[k])
    for title, keys in (("added", added), ("removed", removed), ("changed", changed)):
        for k in keys:
            print(f"{title}: {k}")
    print(f"{len(new)} public items; {len(added)} added, {len(removed)} removed, {len(changed)} changed")
    sys.exit(1 if added or removed or changed else 0)


if __name__ == "__main__":
    main()
