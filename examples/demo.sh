#!/usr/bin/env bash
# The `make demo` scenario: four organisations make keys, agree a contract,
# sign it, and check that everyone signed. Every step uses only the CLI, in
# a scratch directory per party, as each organisation would on its own
# machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$root/bin:$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/cleanroom-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

parties=(publisher advertiser measurer auditor)
say "Each party makes its key pair on its own machine"
for p in "${parties[@]}"; do
  mkdir -p "$work/$p"
  (cd "$work/$p" && cleanroom keygen --out "$p" >/dev/null)
done

say "The parties agree a contract naming their public keys"
pub() { cat "$work/$1/$1.pub"; }
cat >"$work/contract.yaml" <<YAML
version: 1
name: ad-attribution-demo
expires_at: $(date -u -d '+30 days' +%Y-%m-%dT00:00:00Z)
participants:
  - {id: publisher, roles: [data_provider], public_key: "$(pub publisher)"}
  - {id: advertiser, roles: [data_provider, result_recipient], public_key: "$(pub advertiser)"}
  - {id: measurer, roles: [algorithm_provider], public_key: "$(pub measurer)"}
  - {id: auditor, roles: [auditor], public_key: "$(pub auditor)"}
datasets:
  - id: impressions
    provider: publisher
    columns: [{name: user_id, type: string}, {name: campaign, type: string}, {name: shown_at, type: timestamp}]
  - id: conversions
    provider: advertiser
    columns: [{name: user_id, type: string}, {name: value, type: float64}]
algorithm:
  provider: measurer
  language: duckdb-sql
  sha256: "$(printf 'SELECT 1 AS users' | sha256sum | cut -d' ' -f1)"
output: {recipients: [advertiser], group_size_column: users, min_group_size: 50, max_rows: 10000, max_runs: 5}
coordinator:
  platform: sev-snp
  measurements: ["$(printf '%096d' 0)"]
  min_tcb: {bootloader: 0, tee: 0, snp: 0, microcode: 0}
YAML
for p in "${parties[@]}"; do cp "$work/contract.yaml" "$work/$p/"; done
cleanroom contract show "$work/contract.yaml"
echo "contract id: $(cleanroom contract hash "$work/contract.yaml")"

say "Each party signs the contract id with its own key"
for p in "${parties[@]}"; do
  (cd "$work/$p" && cleanroom contract sign contract.yaml --key "$p.key")
done

say "Anyone checks that every participant signed"
sigs=()
for p in "${parties[@]}"; do sigs+=(--sig "$work/$p/$p.sig"); done
cleanroom contract verify "$work/contract.yaml" "${sigs[@]}"
say "Done"
