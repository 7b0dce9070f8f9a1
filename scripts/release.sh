#!/usr/bin/env bash
# Builds the release binaries reproducibly: dist/cleanroom, dist/cleanroomd
# and dist/SHA256SUMS, for linux/amd64. Two builds of the same source with
# the same toolchain (Go version, C compiler and C++ library) give
# byte-identical files, whatever the directory, user, time or build cache.
# docs/deploy-sev-snp.md explains why this matters: the coordinator
# executable is what a contract pins (simulated platform) or one input of
# the guest image whose launch measurement it pins (real SEV-SNP).
#
# Environment:
#   DIST     output directory (default: dist), replaced as a whole
#   VERSION  version compiled into cleanroomd (coordinator.Version, recorded
#            in coordinator.started events); default: git describe
#            --tags --always --dirty, or "dev" outside a git checkout
#   GO       the go command (default: go)
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
DIST=${DIST:-dist}
if [[ -z "${VERSION:-}" ]]; then
  VERSION=$(git describe --tags --always --dirty 2>/dev/null || true)
  VERSION=${VERSION:-dev}
fi
if [[ ! "$VERSION" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ ]]; then
  echo "release: VERSION '$VERSION' must be 1-64 characters of [A-Za-z0-9._+-]" >&2
  exit 2
fi

# Everything that reaches the binaries is fixed here rather than taken from
# the caller's environment: target, tags, C compiler flags (they shape the
# cgo objects), experiments. -trimpath replaces file system paths in the Go
# code and, through -ffile-prefix-map, in the cgo objects; -buildvcs=false
# keeps the commit and its time out (the version below is the only input
# taken from git).
export CGO_ENABLED=1 GOOS=linux GOARCH=amd64 GOAMD64=v1
export GOFLAGS='-tags=duckdb_arrow -trimpath -buildvcs=false -mod=readonly'
export CGO_CFLAGS='-O2 -g' CGO_CPPFLAGS='' CGO_CXXFLAGS='-O2 -g' CGO_LDFLAGS='-O2 -g' CGO_FFLAGS='-O2 -g'
export GOEXPERIMENT='' GOTOOLCHAIN=local LC_ALL=C TZ=UTC

# -buildid= : no Go build id (it hashes inputs that include the action ids
#             of the build, not only the source).
# -s -w     : no symbol table and no DWARF. Stack traces and pprof still
#             name functions (from the pclntab); the DWARF of the cgo
#             objects is where C compilers leave paths behind.
ldflags="-buildid= -s -w -X cleanroom.dev/cleanroom/coordinator.Version=$VERSION"

tmp="$DIST.tmp"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
for cmd in cleanroom cleanroomd; do
  "$GO" build -ldflags="$ldflags" -o "$tmp/$cmd" "./cmd/$cmd"
done
(cd "$tmp" && sha256sum cleanroom cleanroomd > SHA256SUMS)
rm -rf "$DIST"
mv "$tmp" "$DIST"

echo "release: built $("$GO" env GOVERSION) linux/amd64, version $VERSION, into $DIST/" >&2
cat "$DIST/SHA256SUMS"
echo "release: measurement of $DIST/cleanroomd on the simulated platform (SHA-384): $(sha384sum "$DIST/cleanroomd" | cut -d' ' -f1)" >&2
