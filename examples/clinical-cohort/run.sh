#!/usr/bin/env bash
# Clinical cohort sizing, end to end, with a CONFIDENTIAL algorithm. Read it
# as a tutorial: every party works in a directory of its own with its own
# key and uses only the cleanroom and cleanroomd commands.
#
#   operator  runs the coordinator (simulated SEV-SNP here)
#   hospital  brings its patients
#   sponsor   (the drug maker) brings its trial enrolments, the
#             eligibility query and its risk model (WebAssembly, built by
#             make as $BIN/risk_band.wasm), which it keeps secret, and
#             receives the counts per site and risk band
#   ethics    (the ethics committee) audits the coordinator's log
#
# The hospital signs a contract naming only salted commitments to the
# query and to the model: without the salts, which only the sponsor keeps,
# no one can test a guess of either. Both travel encrypted, with their
# salts, to the attested coordinator and nobody else ever sees them. The
# hospital relies on the output policy (k = 20 patients per row); the
# sponsor never sees a row.
#
# Environment: ROWS (patients to generate, default 40000); WORK, KEEP and
# BIN as in ../lib.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
ROWS=${ROWS:-40000}
for p in hospital sponsor ethics; do mkdir -p "$WORK/$p"; done

step "operator: start the coordinator (simulated SEV-SNP) and publish its identity"
start_coordinator
for p in hospital sponsor ethics; do cp "$WORK/operator/identity.json" "$WORK/$p/"; done

step "every party: make a key pair and share the public key"
for p in hospital sponsor ethics; do
  (cd "$WORK/$p" && cleanroom keygen --out "$p" >/dev/null)
done

step "sponsor: publish only a salted commitment to its confidential query"
cp "$here/query.sql" "$WORK/sponsor/query.sql"
query_commitment=$(cd "$WORK/sponsor" && cleanroom algorithm commit query.sql --salt query.salt)
echo "query commitment $query_commitment (the text and the salt stay with the sponsor)" >&2

step "sponsor: commit to its risk model (the weights stay with the sponsor)"
cp "$BIN/risk_band.wasm" "$WORK/sponsor/risk_band.wasm"
model_commitment=$(cd "$WORK/sponsor" && cleanroom model commit risk_band.wasm --salt risk_band.salt)
echo "model risk_band commitment $model_commitment (salted: the salt stays with the sponsor)" >&2

step "all: write the contract from the template"
fill "$here/contract.yaml.tmpl" \
  EXPIRES_AT "$(date -u -d '+90 days' +%Y-%m-%dT00:00:00Z)" \
  HOSPITAL_KEY "$(cat "$WORK/hospital/hospital.pub")" \
  SPONSOR_KEY "$(cat "$WORK/sponsor/sponsor.pub")" \
  ETHICS_KEY "$(cat "$WORK/ethics/ethics.pub")" \
  QUERY_COMMITMENT "$query_commitment" \
  MODEL_COMMITMENT "$model_commitment" \
  MEASUREMENT "$measurement" \
  SIMULATED_ROOT_SHA256 "$root_pin" >"$WORK/contract.yaml"
for p in hospital sponsor ethics; do cp "$WORK/contract.yaml" "$WORK/$p/"; done

step "every party: read the contract (note the confidential-algorithm warning), then sign"
(cd "$WORK/hospital" && cleanroom contract show contract.yaml)
for p in hospital sponsor ethics; do
  (cd "$WORK/$p" && cleanroom contract sign contract.yaml --key "$p.key")
done
cp "$WORK/sponsor/sponsor.sig" "$WORK/ethics/ethics.sig" "$WORK/hospital/"

step "hospital: register the contract"
(
  cd "$WORK/hospital"
  cleanroom contract submit contract.yaml --sig hospital.sig --sig sponsor.sig --sig ethics.sig \
    --key hospital.key --coordinator "$url"
)

step "hospital and sponsor: their own data (generated here, deterministic)"
clinical-cohort-gen --out "$WORK/generated" --rows "$ROWS" --format both
cp "$WORK/generated/patients.parquet" "$WORK/hospital/"
cp "$WORK/generated/enrolments.csv" "$WORK/sponsor/"

step "hospital: encrypt and upload its patients (Parquet)"
(
  cd "$WORK/hospital"
  cleanroom dataset upload patients.parquet --dataset patients \
    --contract contract.yaml --key hospital.key --coordinator "$url"
)

step "sponsor: upload its enrolments, then submit the query and its salt sealed to the coordinator"
(
  cd "$WORK/sponsor"
  export CLEANROOM_COORDINATOR=$url CLEANROOM_CONTRACT=contract.yaml CLEANROOM_KEY=sponsor.key
  cleanroom dataset upload enrolments.csv --dataset enrolments
  cleanroom algorithm submit query.sql --salt query.salt
  cleanroom model submit risk_band.wasm --name risk_band --salt risk_band.salt
  cleanroom model get --name risk_band --out fetched.wasm >/dev/null
  cmp risk_band.wasm fetched.wasm
)

step "hospital: it cannot fetch the sponsor's model (nor can the operator, who has only sealed bytes)"
(
  cd "$WORK/hospital"
  if cleanroom model get --name risk_band --out stolen.wasm --contract contract.yaml --key hospital.key --coordinator "$url"; then
    echo "the hospital fetched the sponsor's confidential model" >&2; exit 1
  fi
  test ! -e stolen.wasm
)

step "sponsor: run, fetch the result, verify it offline, read it"
(
  cd "$WORK/sponsor"
  export CLEANROOM_COORDINATOR=$url CLEANROOM_CONTRACT=contract.yaml CLEANROOM_KEY=sponsor.key
  run_id=$(cleanroom run --param min_age=40 --param max_age=75)
  cleanroom result get --run "$run_id" --out result.bundle
  cleanroom result verify result.bundle
  cleanroom result show result.bundle --format table
  cleanroom result show result.bundle --format jsonl --out result.jsonl
)

step "check: the released counts are exactly the generator's known totals (the same risk model, run natively in Go)"
clinical-cohort-gen check --expected "$WORK/generated/expected.csv" "$WORK/sponsor/result.jsonl"

step "ethics committee: audit the log (it sees that a query ran, never the query)"
(
  cd "$WORK/ethics"
  cleanroom audit log --contract contract.yaml --key ethics.key --coordinator "$url" --state audit-state
)

step "operator: stop the coordinator"
stop_coordinator
echo "clinical-cohort: done" >&2
