#!/usr/bin/env python3
"""Reports import circles between the files of a crate.

Draws one graph per crate: a node per `.rs` file under its `src/`, an edge from a
file to the file of every module it names through a `crate::` or `super::` path
(in `use` lines and inline paths alike, comments and strings left out). A circle
is a set of files that reach each other through such edges (a strongly connected
component of more than one file). Paths through `self::` or a child module's bare
name are how a module reaches into its own children and are not edges.

    python3 scripts/import-cycles.py              # the three crates: src, pool/src, redis/src
    python3 scripts/import-cycles.py src pool/src # only these

Prints each circle with the edges inside it and exits with status 1 if any crate
has one, 0 otherwise.
"""

import os
import re
import sys

DEFAULT_ROOTS = ["src", "pool/src", "redis/src"]

PATH = re.compile(r"\b(crate|super)((?:::(?:super\b|[A-Za-z_][A-Za-z0-9_]*))+|::\{)")
PATH_ATTR = re.compile(r'#\[path\s*=\s*"([^"]+)"\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)')


def strip(text):
    """The code without comments, string and char literals (kept as blanks)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            i = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or text.startswith("'\\u{", i):
            j = text.find("'", i + 2)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Crate:
    def __init__(self, root):
        self.root = os.path.normpath(root)
        self.files = {}  # module path (tuple) -> file
        self.module_of = {}  # file -> module path
        self._uses = {}
        top = next(f for f in ("lib.rs", "main.rs") if os.path.exists(os.path.join(self.root, f)))
        self._collect((), os.path.join(self.root, top))

    def _collect(self, module, path):
        self.files[module] = path
        self.module_of[path] = module
        text = strip(open(path, encoding="utf-8").read())
        base = os.path.dirname(path)
        name = os.path.basename(path)
        if name not in ("lib.rs", "main.rs", "mod.rs"):
            base = os.path.join(base, name[:-3])
        renamed = {m: p for p, m in PATH_ATTR.findall(open(path, encoding="utf-8").read())}
        for child in re.findall(r"^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, re.M):
            if child in renamed:
                candidates = [os.path.join(os.path.dirname(path), renamed[child])]
            else:
                candidates = [os.path.join(base, child + ".rs"), os.path.join(base, child, "mod.rs")]
            found = next((c for c in candidates if os.path.exists(c)), None)
            if found:
                self._collect(module + (child,), os.path.normpath(found))

    def file_of(self, module):
        """The file of the longest prefix of `module` that is a module of its own."""
        for n in range(len(module), -1, -1):
            if module[:n] in self.files:
                return self.files[module[:n]]
        return None

    def uses(self, module):
        """The `use` declarations of a module's file: (anchor, segments, name)."""
        if module not in self._uses:
            text = strip(open(self.files[module], encoding="utf-8").read())
            found = []
            inline = inline_modules(text)
            for m in USE.finditer(text):
                if any(a <= m.start() < b for _, a, b in inline):
                    continue
                for segs, name in flatten(m.group(1)):
                    if segs and segs[0] in ("crate", "super", "self"):
                        found.append((segs[0], segs[1:], name))
                    elif segs and module + (segs[0],) in self.files:
                        found.append(("self", segs, name))
                    elif segs:
                        found.append(("extern", segs, name))
            self._uses[module] = found
        return self._uses[module]

    def absolute(self, here, anchor, segs, depth=0):
        """The file that defines what `anchor::segs` names, written in module
        `here`: a name re-exported by a `use` is followed to where it is defined."""
        if anchor == "extern":
            return None
        cur = {"crate": (), "super": here[:-1], "self": here}[anchor]
        for k, s in enumerate(segs):
            if s == "super":
                cur = cur[:-1]
            elif s == "self":
                continue
            elif cur + (s,) in self.files:
                cur = cur + (s,)
            else:
                if depth < 20 and cur in self.files:
                    for a, target, name in self.uses(cur):
                        if name == s:
                            return self.absolute(cur, a, target + segs[k + 1:], depth + 1)
                break
        return self.files.get(cur) or self.file_of(cur)

    def edges(self):
        graph = {f: set() for f in self.module_of}
        for path, module in self.module_of.items():
            text = strip(open(path, encoding="utf-8").read())
            inline = inline_modules(text)

            def within(at):
                """The module written at offset `at`: inline `mod x { .. }` blocks
                are modules inside the file's own."""
                return module + tuple(n for n, a, b in inline if a <= at < b)

            targets = []
            for m in USE.finditer(text):
                for segs, _ in flatten(m.group(1)):
                    if segs and segs[0] in ("crate", "super"):
                        targets.append((within(m.start()), segs[0], segs[1:]))
            rest = USE.sub(lambda m: " " * len(m.group(0)), text)
            for m in PATH.finditer(rest):
                segs = [s for s in m.group(2).split("::") if s and s != "{"]
                targets.append((within(m.start()), m.group(1), segs))
            for here, anchor, segs in targets:
                target = self.absolute(here, anchor, segs)
                if target and target != path:
                    graph[path].add(target)
        return graph


def inline_modules(text):
    """(name, start, end) of every `mod name { .. }` block in `text`."""
    out = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        out.append((m.group(1), m.end(), i))
    return out


USE = re.compile(r"\buse\s+((?:::)?[^;]*);")


def flatten(tree):
    """The paths of a use tree: (segments, name it binds); globs bind no name."""
    tree = re.sub(r"\s+", " ", tree).strip()
    out = []

    def walk(prefix, t):
        t = t.strip()
        if not t:
            return
        if t.endswith("}") and "{" in t:
            head, inner = t.split("{", 1)
            inner = inner[:-1]
            head = [s for s in head.strip().rstrip(":").split("::") if s]
            parts, depth, cur = [], 0, ""
            for ch in inner:
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                if ch == "," and depth == 0:
                    parts.append(cur)
                    cur = ""
                else:
                    cur += ch
            parts.append(cur)
            for part in parts:
                walk(prefix + head, part)
            return
        name = None
        if " as " in t:
            t, name = [x.strip() for x in t.split(" as ", 1)]
        segs = [x for x in t.split("::") if x]
        if segs and segs[-1] == "*":
            out.append((prefix + segs[:-1], None))
            return
        if segs and segs[-1] == "self":
            segs = segs[:-1]
        full = prefix + segs
        out.append((full, name or (full[-1] if full else None)))

    walk([], tree)
    return out


def circles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    roots = argv or DEFAULT_ROOTS
    here = os.path.dirname(os.path.abspath(__file__))
    os.chdir(os.path.dirname(here))
    found = False
    for root in roots:
        crate = Crate(root)
        graph = crate.edges()
        comps = circles(graph)
        if not comps:
            print(f"{root}: no import circle ({len(graph)} files)")
            continue
        found = True
        for comp in comps:
            print(f"{root}: circle of {len(comp)} files:")
            members = set(comp)
            for f in comp:
                for t in sorted(graph[f] & members):
                    print(f"    {f} -> {t}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
