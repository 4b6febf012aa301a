#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ from the builtin method and, if present, the BMAD fixtures
# (read in place; the corpora are not committed).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
method="$here/../crates/core/method"
fixtures="$here/../../shared/fixtures/bmad-core"
mkdir -p "$here/corpus/definitions" "$here/corpus/render"
seed() { # selector-byte folder glob
  local byte="$1" dir="$2" pattern="$3" f
  [ -d "$dir" ] || return 0
  for f in "$dir"/$pattern; do
    [ -f "$f" ] || continue
    { printf "\\x$byte"; cat "$f"; } > "$here/corpus/definitions/$byte-$(basename "$f")"
  done
}
for root in "$method" "$fixtures"; do
  seed 00 "$root/agents" '*.md'
  seed 01 "$root/templates" '*.yaml'
  seed 02 "$root/workflows" '*.yaml'
  seed 03 "$root/agent-teams" '*.yaml'
  seed 04 "$root/workflows" '*.yaml'
done
for f in "$method"/prompts/*.j2 "$method"/prompts/partials/*.j2 "$method"/templates/*.yaml; do
  cp "$f" "$here/corpus/render/$(basename "$f")"
done
echo "seeded: $(ls "$here/corpus/definitions" | wc -l) definitions, $(ls "$here/corpus/render" | wc -l) render"
