#!/usr/bin/env bash
# Ad attribution, end to end, as four organisations and an operator would do
# it. Read it as a tutorial: every party works in a directory of its own
# (its "machine"), with its own key, and uses only the cleanroom and
# cleanroomd commands. Only public files move between parties: public
# keys, the contract, signatures, the coordinator's identity document, and
# the result bundle.
#
#   operator    runs the coordinator (simulated SEV-SNP here)
#   publisher   brings impressions
#   advertiser  brings conversions and receives the result
#   measurer    brings the SQL
#   auditor     checks the coordinator's log
#
# Environment: ROWS (impressions to generate, default 50000); WORK, KEEP and
# BIN as in ../lib.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
ROWS=${ROWS:-50000}

for p in operator publisher advertiser measurer auditor; do mkdir -p "$WORK/$p"; done

step "operator: start the coordinator (simulated SEV-SNP) and publish its identity"
start_coordinator
# The identity document is public: every party gets a copy.
for p in publisher advertiser measurer auditor; do cp "$WORK/operator/identity.json" "$WORK/$p/"; done

step "every party: make a key pair and share the public key"
for p in publisher advertiser measurer auditor; do
  (cd "$WORK/$p" && cleanroom keygen --out "$p" >/dev/null)
done

step "measurer: publish the SHA-256 of the query (the text stays with the measurer until submission)"
cp "$here/query.sql" "$WORK/measurer/query.sql"
query_sha=$(sha256sum "$WORK/measurer/query.sql" | cut -d' ' -f1)
echo "query sha256 $query_sha" >&2

step "all: write the contract from the template, pinning the coordinator's measurement and root"
fill "$here/contract.yaml.tmpl" \
  EXPIRES_AT "$(date -u -d '+90 days' +%Y-%m-%dT00:00:00Z)" \
  PUBLISHER_KEY "$(cat "$WORK/publisher/publisher.pub")" \
  ADVERTISER_KEY "$(cat "$WORK/advertiser/advertiser.pub")" \
  MEASURER_KEY "$(cat "$WORK/measurer/measurer.pub")" \
  AUDITOR_KEY "$(cat "$WORK/auditor/auditor.pub")" \
  QUERY_SHA256 "$query_sha" \
  MEASUREMENT "$measurement" \
  SIMULATED_ROOT_SHA256 "$root_pin" >"$WORK/contract.yaml"
for p in publisher advertiser measurer auditor; do cp "$WORK/contract.yaml" "$WORK/$p/"; done

step "every party: read the contract, then sign its id"
(cd "$WORK/advertiser" && cleanroom contract show contract.yaml)
for p in publisher advertiser measurer auditor; do
  (cd "$WORK/$p" && cleanroom contract sign contract.yaml --key "$p.key")
done
sigs=()
for p in publisher advertiser measurer auditor; do
  [ "$p" = publisher ] || cp "$WORK/$p/$p.sig" "$WORK/publisher/"
  sigs+=(--sig "$p.sig")
done

step "publisher: check every signature, then register the contract"
(
  cd "$WORK/publisher"
  cleanroom contract verify contract.yaml "${sigs[@]}"
  cleanroom contract submit contract.yaml "${sigs[@]}" --key publisher.key --coordinator "$url"
)

step "publisher and advertiser: their own data (generated here, deterministic)"
ad-attribution-gen --out "$WORK/generated" --rows "$ROWS" --format csv
cp "$WORK/generated/impressions.csv" "$WORK/publisher/"
cp "$WORK/generated/conversions.csv" "$WORK/advertiser/"

step "publisher: attest the coordinator, then encrypt and upload impressions"
(
  cd "$WORK/publisher"
  export CLEANROOM_COORDINATOR=$url CLEANROOM_CONTRACT=contract.yaml CLEANROOM_KEY=publisher.key
  cleanroom coordinator info
  cleanroom dataset upload impressions.csv --dataset impressions
)

step "advertiser: encrypt and upload conversions"
(
  cd "$WORK/advertiser"
  cleanroom dataset upload conversions.csv --dataset conversions \
    --contract contract.yaml --key advertiser.key --coordinator "$url"
)

step "measurer: submit the query"
(
  cd "$WORK/measurer"
  cleanroom algorithm submit query.sql --contract contract.yaml --key measurer.key --coordinator "$url"
)

# The reporting window: conversions from since to until (excluded), the
# query's parameters, which every run gives and the contract bounds. This
# one spans all the data, so the result is the generator's expectation.
window=(--param since=2026-10-01T00:00:00Z --param until=2027-01-31T00:00:00Z)

step "advertiser: run over the reporting window, fetch the result bundle, verify it offline, read it"
(
  cd "$WORK/advertiser"
  export CLEANROOM_COORDINATOR=$url CLEANROOM_CONTRACT=contract.yaml CLEANROOM_KEY=advertiser.key
  run_id=$(cleanroom run "${window[@]}")
  cleanroom result get --run "$run_id" --out result.bundle
  cleanroom result verify result.bundle
  cleanroom result show result.bundle
  cleanroom result show result.bundle --format csv --out result.csv
)

step "check: the released rows are exactly the generator's known totals, the small campaigns suppressed"
ad-attribution-gen check --expected "$WORK/generated/expected.csv" "$WORK/advertiser/result.csv"

step "auditor: verify the coordinator's log and print the timeline"
(
  cd "$WORK/auditor"
  cleanroom audit log --contract contract.yaml --key auditor.key --coordinator "$url" --state audit-state
)

# The same parties, the same data, a second contract: mode
# differential_privacy. Each user's contribution is bounded, noise is added
# to every count and sum, and every run spends part of a privacy budget
# that the log accounts for.
step "measurer: the differentially private variant of the query"
cp "$here/query-dp.sql" "$WORK/measurer/query-dp.sql"
dp_sha=$(sha256sum "$WORK/measurer/query-dp.sql" | cut -d' ' -f1)

step "all: write, read and sign the differential-privacy contract"
fill "$here/contract-dp.yaml.tmpl" \
  EXPIRES_AT "$(date -u -d '+90 days' +%Y-%m-%dT00:00:00Z)" \
  PUBLISHER_KEY "$(cat "$WORK/publisher/publisher.pub")" \
  ADVERTISER_KEY "$(cat "$WORK/advertiser/advertiser.pub")" \
  MEASURER_KEY "$(cat "$WORK/measurer/measurer.pub")" \
  AUDITOR_KEY "$(cat "$WORK/auditor/auditor.pub")" \
  QUERY_SHA256 "$dp_sha" \
  MEASUREMENT "$measurement" \
  SIMULATED_ROOT_SHA256 "$root_pin" >"$WORK/contract-dp.yaml"
for p in publisher advertiser measurer auditor; do cp "$WORK/contract-dp.yaml" "$WORK/$p/"; done
(cd "$WORK/advertiser" && cleanroom contract show contract-dp.yaml)
dpsigs=()
for p in publisher advertiser measurer auditor; do
  (cd "$WORK/$p" && cleanroom contract sign contract-dp.yaml --key "$p.key" --out "$p-dp.sig")
  [ "$p" = publisher ] || cp "$WORK/$p/$p-dp.sig" "$WORK/publisher/"
  dpsigs+=(--sig "$p-dp.sig")
done
(cd "$WORK/publisher" && cleanroom contract submit contract-dp.yaml "${dpsigs[@]}" --key publisher.key --coordinator "$url")

step "publisher, advertiser, measurer: upload the same data and submit the query under it"
(cd "$WORK/publisher" && cleanroom dataset upload impressions.csv --dataset impressions --contract contract-dp.yaml --key publisher.key --coordinator "$url")
(cd "$WORK/advertiser" && cleanroom dataset upload conversions.csv --dataset conversions --contract contract-dp.yaml --key advertiser.key --coordinator "$url")
(cd "$WORK/measurer" && cleanroom algorithm submit query-dp.sql --contract contract-dp.yaml --key measurer.key --coordinator "$url")

step "advertiser: run it twice (each run charged ε=1 of the budget of 2), verify, read"
(
  cd "$WORK/advertiser"
  export CLEANROOM_COORDINATOR=$url CLEANROOM_CONTRACT=contract-dp.yaml CLEANROOM_KEY=advertiser.key
  for n in 1 2; do
    run_id=$(cleanroom run "${window[@]}")
    cleanroom result get --run "$run_id" --out "result-dp-$n.bundle"
    cleanroom result verify "result-dp-$n.bundle"
  done
  cleanroom result show result-dp-2.bundle --format csv --out result-dp.csv
  echo "a third run is refused: the budget is spent" >&2
  if cleanroom run "${window[@]}" 2>run3.err; then echo "the third run was not refused" >&2; exit 1; fi
  cat run3.err >&2
)

step "advertiser: the exact (mode aggregate) and the private results side by side"
ad-attribution-gen compare "$WORK/advertiser/result.csv" "$WORK/advertiser/result-dp.csv"

step "auditor: recompute the privacy budget from the log"
(
  cd "$WORK/auditor"
  cleanroom audit log --contract contract-dp.yaml --key auditor.key --coordinator "$url" --state audit-state-dp
)

step "operator: stop the coordinator"
stop_coordinator
echo "ad-attribution: done" >&2
