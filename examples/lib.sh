# Plumbing shared by the example scripts (sourced, not run): a work
# directory per run, the operator's coordinator, template filling. The
# parties' own commands stay in each example's run.sh.
#
# Environment: WORK (work directory, default a fresh temporary one, removed
# at the end unless KEEP=1), BIN (where cleanroom, cleanroomd and the
# generators are; default the repository's bin/, built by `make build`).

examples_root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$examples_root/.." && pwd)
BIN=${BIN:-$repo_root/bin}
export PATH="$BIN:$PATH"
unset CLEANROOM_COORDINATOR CLEANROOM_KEY CLEANROOM_CONTRACT

own_work=0
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/cleanroom-example.XXXXXX")
  own_work=1
fi
coordinator_pid=

cleanup() {
  if [ -n "$coordinator_pid" ]; then
    kill "$coordinator_pid" 2>/dev/null || true
    wait "$coordinator_pid" 2>/dev/null || true
  fi
  if [ "$own_work" = 1 ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# start_coordinator: the operator starts cleanroomd on a free port of
# 127.0.0.1 with a fresh simulated platform in $WORK/operator/data, and
# publishes the identity document. Sets url, measurement and root_pin.
start_coordinator() {
  mkdir -p "$WORK/operator"
  cleanroomd serve --data-dir "$WORK/operator/data" --attestation simulated --listen 127.0.0.1:0 \
    --log-format json >"$WORK/operator/url" 2>"$WORK/operator/coordinator.log" &
  coordinator_pid=$!
  for _ in $(seq 1 300); do [ -s "$WORK/operator/url" ] && break; sleep 0.1; done
  if [ ! -s "$WORK/operator/url" ]; then
    cat "$WORK/operator/coordinator.log" >&2
    return 1
  fi
  url=$(cat "$WORK/operator/url")
  cleanroomd identity --data-dir "$WORK/operator/data" >"$WORK/operator/identity.json"
  measurement=$(json_field measurement "$WORK/operator/identity.json")
  root_pin=$(json_field simulated_root_sha256 "$WORK/operator/identity.json")
  echo "coordinator at $url (simulated; measurement ${measurement:0:16}...)" >&2
}

# stop_coordinator: the operator stops cleanroomd gracefully.
stop_coordinator() {
  kill "$coordinator_pid"
  wait "$coordinator_pid" || true
  coordinator_pid=
}

# json_field NAME FILE prints the hex value of a top-level field.
json_field() { sed -n "s/.*\"$1\": *\"\([0-9a-f]*\)\".*/\1/p" "$2" | head -n 1; }

# fill TEMPLATE NAME VALUE [NAME VALUE]... prints TEMPLATE with each
# {{NAME}} replaced by VALUE.
fill() {
  local s
  s=$(<"$1")
  shift
  while (($#)); do
    s=${s//"{{$1}}"/"$2"}
    shift 2
  done
  printf '%s\n' "$s"
}
