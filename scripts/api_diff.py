#!/usr/bin/env python3
"""Compares the public API of a crate in two rustdoc JSON files.

The JSON must be built with --document-private-items, so that types a user
can reach but not name are in it. Two walks list the API, every item under
a key with its signature (ids and spans left out):

- by path: every public item reachable from the crate root (modules,
  re-exports, types, fields, variants, traits, functions, constants, impls
  and their items). A struct named this way also records whether it has
  private fields, since only then can a user build it with a literal.
- through types: every type or trait of this crate that a public
  signature names (a pub field's type, a parameter or return type, an
  associated type, an impl's self type, a bound, `impl Trait`), with its
  pub fields, its inherent pub methods and its trait impls (a trait: its
  impls for other crates' types too), and in turn what those name. An
  impl of a private trait of this crate is not API and is left out. `Raft::read_only` makes
  `ReadOnly` API this way, though its module is private. Such a type is
  keyed `reachable <its path>`; it cannot be named, so it cannot be built
  or matched, and its private fields are not API.

Blanket impls come from other crates and are skipped. Prints what was
added, removed or changed, and exits 1 if anything was.

    api_diff.py BASELINE.json CANDIDATE.json
"""

import json
import re
import sys

# Keys that carry no API meaning (ids differ between builds, stripping is
# recorded separately), or that list children, which are listed under
# their own keys.
SKIP_KEYS = {"id", "span", "docs", "links", "crate_id", "items", "impls",
             "fields", "variants", "implementations", "has_stripped_fields"}

# Attributes as rustdoc prints them can quote source spans, which move when
# lines are added above them.
SPAN = re.compile(r"[\w./-]+\.rs:\d+:\d+: \d+:\d+ \(#\d+\)")

# What a child is to its parent decides what its visibility must be: a
# module's items, a struct's fields and an inherent impl's items are API
# only if `pub`; enum variants, trait items and trait impl items are as
# public as their parent whatever rustdoc says.
MUST_BE_PUB = {"module", "field", "inherent"}


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


def named_types(value):
    """Ids of the types and traits a signature names: resolved paths, and
    the traits of bounds, `impl Trait` and `dyn Trait`."""
    if isinstance(value, dict):
        if "path" in value and value.get("id") is not None:
            yield value["id"]
        for v in value.values():
            yield from named_types(v)
    elif isinstance(value, list):
        for v in value:
            yield from named_types(v)


def api(path):
    doc = json.load(open(path))
    index = doc["index"]
    out = {}
    walked = set()   # type ids listed with their fields and impls
    named = []       # type ids that public signatures name

    def public_trait(trait):
        """Whether an impl of `trait` is API: a trait of another crate, or a
        public one of this crate."""
        local = trait and index.get(str(trait.get("id")))
        return not local or local.get("visibility") == "public"

    def record(key, kind, inner, item, **extra):
        sig = {"kind": kind, "inner": strip(inner), "visibility": item.get("visibility"),
               "deprecation": item.get("deprecation"), "attrs": strip(item.get("attrs")), **extra}
        out[key] = json.dumps(sig, sort_keys=True)
        named.extend(named_types(inner))

    def walk(item_id, prefix, role, name=None, seen=frozenset(), by_path=True):
        item = index.get(str(item_id))
        if item is None or item_id in seen:
            return
        if role in MUST_BE_PUB and item.get("visibility") != "public":
            return
        seen = seen | {item_id}
        kind, inner = next(iter(item["inner"].items()))
        # A re-export's name is the `use` item's own.
        name = name or (inner["name"] if kind == "use" else item.get("name"))
        key = f"{prefix}::{name}" if prefix else name
        if kind == "module":
            record(key, kind, inner, item)
            for child in inner["items"]:
                walk(child, key, "module", seen=seen)
        elif kind == "use":
            record(key if inner["is_glob"] is False else f"{prefix}::*{inner['source']}",
                   kind, {"source": inner["source"], "is_glob": inner["is_glob"]}, item)
            if inner.get("id") is not None and not inner["is_glob"]:
                walk(inner["id"], prefix, "module", name=inner["name"], seen=seen)
        elif kind == "impl":
            trait = inner.get("trait")
            if inner.get("blanket_impl") is not None or not public_trait(trait):
                return
            impl_key = f"impl {type_name(trait) if trait else ''} for {type_name(inner['for'])}"
            record(f"{prefix} :: {impl_key}", kind, inner, item)
            for child in inner["items"]:
                walk(child, f"{prefix} :: {impl_key}", "trait_item" if trait else "inherent",
                     seen=seen)
        else:
            children, extra = [], {}
            if kind == "struct" and inner["kind"] != "unit":
                fields = inner["kind"].get("plain", {}).get("fields", []) + \
                    [f for f in inner["kind"].get("tuple") or [] if f is not None]
                children = [(f, "field") for f in fields]
                if by_path:
                    extra["private_fields"] = any(
                        index.get(str(f), {}).get("visibility") != "public" for f in fields) or \
                        None in (inner["kind"].get("tuple") or [])
            elif kind in ("enum", "union"):
                children = [(v, "variant") for v in inner.get("variants", [])] + \
                    [(f, "field") for f in inner.get("fields", [])]
            elif kind == "trait":
                children = [(i, "trait_item") for i in inner["items"]]
            elif kind == "variant" and isinstance(inner.get("kind"), dict):
                k = inner["kind"]
                children = [(f, "variant") for f in
                            k.get("struct", {}).get("fields", []) + (k.get("tuple") or [])]
            if kind in ("struct", "variant") and isinstance(inner.get("kind"), dict):
                # The fields are listed under their own keys; the shape stays.
                inner = {**inner, "kind": next(iter(inner["kind"]))}
            record(key, kind, inner, item, **extra)
            if kind in ("struct", "enum", "union", "trait", "type_alias"):
                walked.add(item_id)
            for child, child_role in children:
                if child is not None:
                    walk(child, key, child_role, seen=seen, by_path=by_path)
            # A type's impls, and a trait's impls for other crates' types.
            for impl_id in inner.get("impls", []) + inner.get("implementations", []):
                walk(impl_id, key, "impl", seen=seen, by_path=by_path)

    walk(doc["root"], "", "root")
    while named:
        type_id = named.pop()
        item = index.get(str(type_id))
        if type_id in walked or item is None or item.get("crate_id") != 0:
            continue
        kind = next(iter(item["inner"]))
        if kind not in ("struct", "enum", "union", "trait", "type_alias"):
            continue
        walked.add(type_id)
        # Keyed by its path, private modules included: a type that moves
        # shows as removed and added, which errs on the safe side.
        type_path = "::".join(doc["paths"][str(type_id)]["path"])
        walk(type_id, "", "reachable", name=f"reachable {type_path}", by_path=False)
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
    reachable = sum(1 for k in new if k.startswith("reachable "))
    print(f"{len(new)} public items ({reachable} reachable only through other items' types); "
          f"{len(added)} added, {len(removed)} removed, {len(changed)} changed")
    sys.exit(1 if added or removed or changed else 0)


if __name__ == "__main__":
    main()
