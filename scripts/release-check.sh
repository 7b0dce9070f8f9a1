#!/usr/bin/env bash
# Checks that `make release` is reproducible: it builds the release three
# times and requires byte-identical SHA256SUMS.
#
#   1. in a snapshot of this tree, with the caller's Go build cache;
#   2. in the same snapshot, with an empty build cache (everything, cgo
#      included, is compiled again);
#   3. in a second snapshot at another, longer path, with another empty
#      build cache and the module cache reached through another path.
#
# The snapshots hold what a build in this tree sees (tracked and untracked
# files, not ignored ones), taken once, so edits made meanwhile cannot make
# the builds differ. All three use one VERSION (git describe, computed
# once). It takes several minutes: builds 2 and 3 compile everything from
# scratch. It is not part of `make test`. dist/ is not touched, and the
# work directory is removed at the end.
#
# Environment: GO (default go); VERSION (default: git describe); KEEP=1
# keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
if [[ -z "${VERSION:-}" ]]; then
  VERSION=$(git describe --tags --always --dirty 2>/dev/null || true)
  VERSION=${VERSION:-dev}
fi
export GO VERSION

work=$(mktemp -d "${TMPDIR:-/tmp}/cleanroom-release-check.XXXXXX")
cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "release-check: kept $work" >&2
  else
    chmod -R u+w "$work" 2>/dev/null || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

step() { echo "release-check: $*" >&2; }
timed() {
  local start=$SECONDS
  "$@"
  step "  took $((SECONDS - start)) s"
}

snapshot() {
  mkdir -p "$1"
  git ls-files -z --cached --others --exclude-standard --deduplicate |
    while IFS= read -r -d '' f; do
      # Skip files deleted in the work tree and earlier release outputs.
      [[ -e "$f" && "$f" != dist/* && "$f" != dist.tmp/* ]] && printf '%s\0' "$f"
    done |
    tar --null -T - -cf - | tar -C "$1" -xf -
}
src1="$work/src"
src2="$work/another/much/longer/path/to/a/copy/of/the/source"
snapshot "$src1"
mkdir -p "$src2" && cp -a "$src1/." "$src2/"

step "1/3 build in $src1 with the usual build cache"
timed env DIST="$work/out1" "$src1/scripts/release.sh" >/dev/null

step "2/3 build in $src1 with an empty build cache"
timed env DIST="$work/out2" GOCACHE="$work/cache2" "$src1/scripts/release.sh" >/dev/null

step "3/3 build in $src2 with an empty build cache and the module cache seen through another path"
modcache=$("$GO" env GOMODCACHE)
ln -s "$modcache" "$work/modcache-elsewhere"
timed env DIST="$work/out3" GOCACHE="$work/cache3" GOMODCACHE="$work/modcache-elsewhere" GOPROXY=off \
  "$src2/scripts/release.sh" >/dev/null

status=0
for n in 2 3; do
  if cmp -s "$work/out1/SHA256SUMS" "$work/out$n/SHA256SUMS"; then
    step "build $n: SHA256SUMS identical to build 1"
  else
    step "build $n: SHA256SUMS DIFFER from build 1:"
    diff "$work/out1/SHA256SUMS" "$work/out$n/SHA256SUMS" >&2 || true
    status=1
  fi
done
cat "$work/out1/SHA256SUMS"
if [[ $status == 0 ]]; then
  step "reproducible: three builds of version $VERSION are byte-identical"
else
  step "NOT reproducible (KEEP=1 keeps the builds for diffoscope or cmp -l)"
fi
exit $status
