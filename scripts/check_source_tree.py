#!/usr/bin/env python3
# Checks the shape of a source tree (default host/src): no include cycle, no source file at its
# top level (every unit lives in a stage folder), no file over 500 lines. A unit is a path without
# its extension (x.h and x.cpp are one unit); unit a depends on unit b when a file of a includes a
# header of b (a quoted include is resolved against the including file's folder, then the root, then
# any include directories given after the root).
# A cycle is a strongly connected component of more than one unit. Exits 1 on any finding.
import os
import re
import sys

MAX_LINES = 500


def units_and_edges(root, include_dirs=()):
    edges = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith((".h", ".cpp")):
                continue
            path = os.path.join(folder, name)
            unit = os.path.splitext(os.path.relpath(path, root))[0]
            edges.setdefault(unit, set())
            with open(path, encoding="utf-8") as f:
                text = f.read()
            for m in re.finditer(r'^#include "([^"]+)"', text, re.M):
                for base in (folder, root, *include_dirs):
                    target = os.path.normpath(os.path.join(base, m.group(1)))
                    if os.path.exists(target) and target.startswith(os.path.normpath(root) + os.sep):
                        other = os.path.splitext(os.path.relpath(target, root))[0]
                        if other != unit:
                            edges[unit].add(other)
                        break
    return edges


def cycles(edges):
    # Tarjan's strongly connected components, iterative.
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "host/src"
    include_dirs = sys.argv[2:]
    if not os.path.isdir(root):
        print(f"{root}: not a directory")
        return 2
    edges = units_and_edges(root, include_dirs)
    problems = []
    for component in cycles(edges):
        problems.append("include cycle: " + " <-> ".join(component))
    for name in sorted(os.listdir(root)):
        if name.endswith((".h", ".cpp")):
            problems.append(f"{os.path.join(root, name)}: source file at the top level (belongs in a stage folder)")
    for folder, _, files in os.walk(root):
        for name in sorted(files):
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = sum(1 for _ in f)
            if lines > MAX_LINES:
                problems.append(f"{path}: {lines} lines (more than {MAX_LINES})")
    print(f"{root}: {len(edges)} units, {sum(len(e) for e in edges.values())} include edges, "
          f"{len(problems)} problems")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
