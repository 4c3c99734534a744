#!/usr/bin/env bash
# Fails if any file of the repository cites a document that is not in it: the project's
# comments, help strings and docs cite the reference's own files and functions, or docs/*.md.
# Usage: repo_references.sh SOURCE_DIR. Files are those git tracks (or, outside a git checkout,
# every file but .git/); each offending line is printed as file:line:text.
set -euo pipefail

root="${1:?usage: repo_references.sh SOURCE_DIR}"
cd "$root"

# The patterns are assembled from pieces so that this script does not match itself.
section=$'\xc2\xa7'
patterns=("facts ${section}" "DESIGN ${section}" "../""shared/")
args=()
for p in "${patterns[@]}"; do args+=(-e "$p"); done

list_files() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z
  else
    find . -path ./.git -prune -o -type f -print0 | sed -z 's|^\./||'
  fi
}

# grep exits 1 when nothing matches; -s skips files listed by git but absent from the tree.
hits="$(list_files | xargs -0 -r grep -n -I -s -F "${args[@]}" -- || true)"
if [[ -n "$hits" ]]; then
  printf '%s\n' "$hits"
  echo "repo_references: $(printf '%s\n' "$hits" | wc -l) line(s) cite documents outside the repository" \
       "(cite the reference's files and functions, or docs/*.md)" >&2
  exit 1
fi
echo "repo_references: no citation of a document outside the repository"
