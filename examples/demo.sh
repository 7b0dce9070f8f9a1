#!/usr/bin/env bash
# The `make demo` scenario: the ad-attribution example, end to end, on the
# embedded defaults (simulated SEV-SNP, in-memory DuckDB, a data directory
# in a temporary folder removed at the end). A publisher and an advertiser
# measure conversions per campaign without showing each other a row; a
# measurement company brings the SQL; an auditor checks the coordinator's
# log. See examples/ad-attribution/README.md, and run.sh there to read each
# party's commands.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cat >&2 <<'INTRO'
Cleanroom demo: four organisations and an operator, one confidential
measurement. The coordinator runs on the SIMULATED SEV-SNP platform: the
protocol and every check are real, the hardware protection is not.
INTRO
"$root/examples/ad-attribution/run.sh"
cat >&2 <<'INTRO'

Second scenario: confidential AI. A drug maker's risk model (WebAssembly,
weights kept secret) scores a hospital's patients inside the query; the
hospital never sees the model, the drug maker never sees a row, and only
counts per risk band of at least 20 patients leave.
INTRO
ROWS=${ROWS:-20000} "$root/examples/clinical-cohort/run.sh"
printf '\nDemo finished: the results above are verified down to the (simulated) AMD root,\nand the audit timeline was verified against the coordinator'"'"'s signed log.\n' >&2
