package contracts

import (
	"crypto/sha256"
	"fmt"

	"cleanroom.dev/cleanroom/internal/canon"
)

// CanonicalCBOR encodes v with the deterministic encoding used for every
// hashed or signed Cleanroom structure (RFC 8949 §4.2.1 core
// deterministic encoding).
func CanonicalCBOR(v any) ([]byte, error) { return canon.Marshal(v) }

// canonical returns the contract as plain maps, lists, strings, integers,
// booleans and byte strings: the structure documented in docs/contract.md.
// Only parsed values appear, so formatting, comments, key order, quoting and
// spelled-out defaults in the source do not change it.
func (c *Contract) canonical() map[string]any {
	participants := make([]any, len(c.Participants))
	for i, p := range c.Participants {
		roles := make([]any, len(p.Roles))
		for j, r := range p.Roles {
			roles[j] = string(r)
		}
		participants[i] = map[string]any{
			"id":         p.ID,
			"roles":      roles,
			"public_key": p.PublicKey.Bytes(),
		}
	}
	datasets := make([]any, len(c.Datasets))
	for i, ds := range c.Datasets {
		m := map[string]any{
			"id":       ds.ID,
			"provider": ds.Provider,
			"columns":  canonicalColumns(ds.Columns),
		}
		// Absent privacy fields are omitted, so contracts written before
		// they existed keep their ids.
		if ds.PrivacyUnit != "" {
			m["privacy_unit"] = ds.PrivacyUnit
		}
		if ds.Dimensions != nil {
			m["dimensions"] = stringList(ds.Dimensions)
		}
		if ds.Aggregations != nil {
			aggs := map[string]any{}
			for _, a := range ds.Aggregations {
				aggs[a.Column] = stringList(a.Functions)
			}
			m["aggregations"] = aggs
		}
		datasets[i] = m
	}
	recipients := make([]any, len(c.Output.Recipients))
	for i, r := range c.Output.Recipients {
		recipients[i] = r
	}
	measurements := make([]any, len(c.Coordinator.Measurements))
	for i, m := range c.Coordinator.Measurements {
		measurements[i] = m[:]
	}
	root := []byte{}
	if c.Coordinator.SimulatedRootSHA256 != nil {
		root = c.Coordinator.SimulatedRootSHA256[:]
	}
	tcb := c.Coordinator.MinTCB
	output := map[string]any{
		"recipients":        recipients,
		"group_size_column": c.Output.GroupSizeColumn,
		"min_group_size":    c.Output.MinGroupSize,
		"max_rows":          c.Output.MaxRows,
		"max_runs":          c.Output.MaxRuns,
	}
	// The mode is written only when it is not the default that the other
	// fields imply, so contracts written before modes existed keep their
	// ids and spelling the default out does not change one.
	if c.Output.Mode != c.Output.DefaultMode() {
		output["mode"] = string(c.Output.Mode)
	}
	coordinator := map[string]any{
		"platform":     string(c.Coordinator.Platform),
		"measurements": measurements,
		"allow_debug":  c.Coordinator.AllowDebug,
		"min_tcb": map[string]any{
			"bootloader": tcb.Bootloader,
			"tee":        tcb.TEE,
			"snp":        tcb.SNP,
			"microcode":  tcb.Microcode,
		},
		"simulated_root_sha256": root,
	}
	// The other platforms' reference values appear only when present, so
	// that SEV-SNP contracts keep the encoding (and id) they always had.
	if r := c.Coordinator.TDX; r != nil {
		rtmr := make([]any, len(r.RTMR))
		for i, set := range r.RTMR {
			rtmr[i] = []any{set[0][:], set[1][:], set[2][:], set[3][:]}
		}
		coordinator["tdx"] = map[string]any{
			"mrtd":            byteList48(r.MRTD),
			"rtmr":            rtmr,
			"min_tee_tcb_svn": r.MinTEETCBSVN[:],
			"allow_debug":     r.AllowDebug,
		}
	}
	if r := c.Coordinator.Nitro; r != nil {
		coordinator["nitro"] = map[string]any{
			"pcr0": byteList48(r.PCR0),
			"pcr1": byteList48(r.PCR1),
			"pcr2": byteList48(r.PCR2),
		}
	}
	if r := c.Coordinator.CCA; r != nil {
		iak := make([]any, len(r.Platform.IAKSHA256))
		for i, h := range r.Platform.IAKSHA256 {
			iak[i] = h[:]
		}
		coordinator["cca"] = map[string]any{
			"rim": byteList(r.RIM),
			"platform_refs": map[string]any{
				"iak_sha256":         iak,
				"implementation_ids": byteList(r.Platform.ImplementationIDs),
				"sw_measurements":    byteList(r.Platform.SWMeasurements),
			},
		}
	}
	algorithm := map[string]any{
		"provider":     c.Algorithm.Provider,
		"language":     c.Algorithm.Language,
		"sha256":       c.Algorithm.SHA256[:],
		"confidential": c.Algorithm.Confidential,
	}
	// Parameters and supersedes appear only when present, so contracts
	// written before they existed keep their ids.
	if len(c.Algorithm.Parameters) > 0 {
		algorithm["parameters"] = canonicalParameters(c.Algorithm.Parameters)
	}
	m := map[string]any{
		"version":      c.Version,
		"name":         c.Name,
		"expires_at":   c.ExpiresAt.Unix(),
		"participants": participants,
		"datasets":     datasets,
		"algorithm":    algorithm,
		"output":       output,
		"coordinator":  coordinator,
	}
	// A contract without models has no "models" key, so contracts written
	// before models existed keep their ids.
	if len(c.Models) > 0 {
		models := make([]any, len(c.Models))
		for i, md := range c.Models {
			args := make([]any, len(md.Args))
			for j, a := range md.Args {
				args[j] = a.String()
			}
			models[i] = map[string]any{
				"name":         md.Name,
				"provider":     md.Provider,
				"sha256":       md.SHA256[:],
				"confidential": md.Confidential,
				"args":         args,
				"result":       md.Result.String(),
			}
		}
		m["models"] = models
	}
	if c.Supersedes != nil {
		m["supersedes"] = c.Supersedes[:]
	}
	return m
}

func stringList(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

func byteList48(list [][48]byte) []any {
	out := make([]any, len(list))
	for i := range list {
		out[i] = list[i][:]
	}
	return out
}

func byteList(list [][]byte) []any {
	out := make([]any, len(list))
	for i, b := range list {
		out[i] = b
	}
	return out
}

func canonicalColumns(cols []Column) []any {
	out := make([]any, len(cols))
	for i, col := range cols {
		m := map[string]any{"name": col.Name, "type": col.Type.String()}
		if col.NotNull {
			// Only when set, so the encoding (and every contract id and
			// schema digest) is what it was before the field existed.
			m["nullable"] = false
		}
		out[i] = m
	}
	return out
}

// CanonicalBytes returns the deterministic CBOR encoding whose SHA-256 is
// the contract id.
func (c *Contract) CanonicalBytes() []byte {
	b, err := CanonicalCBOR(c.canonical())
	if err != nil {
		panic(fmt.Sprintf("contracts: encoding a parsed contract: %v", err)) // only plain values: cannot fail
	}
	return b
}

// schemaDomain separates schema digests from every other hash.
const schemaDomain = "cleanroom/schema/v1"

// SchemaDigest returns the SHA-256 of the canonical CBOR array
// ["cleanroom/schema/v1", [{"name": ..., "type": ...}, ...]] of the dataset's
// columns, in contract order. Envelopes and upload statements carry it so a
// dataset encrypted for one schema cannot be taken for another.
func (d *Dataset) SchemaDigest() [32]byte {
	b, err := CanonicalCBOR([]any{schemaDomain, canonicalColumns(d.Columns)})
	if err != nil {
		panic(fmt.Sprintf("contracts: encoding a schema: %v", err))
	}
	return sha256.Sum256(b)
}
