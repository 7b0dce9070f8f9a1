package contracts

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"cleanroom.dev/cleanroom/cleanroom"
)

// Fill is what FillTemplate writes into a contract draft, so that nobody
// pastes a 1.7 KB key line or a 96-digit measurement by hand. Zero fields
// leave the draft's value as it is.
type Fill struct {
	Name      string
	ExpiresAt time.Time
	// Keys maps a participant id of the draft to its public key line (the
	// content of its NAME.pub).
	Keys map[string]string
	// Platform, Measurement and SimulatedRoot come from the coordinator's
	// identity document: coordinator.platform, coordinator.measurements
	// (this one measurement) and, on the simulated platform,
	// coordinator.simulated_root_sha256.
	Platform      Platform
	Measurement   *[48]byte
	SimulatedRoot *[32]byte
	// AlgorithmSHA256 is algorithm.sha256 (Algorithm.Digest of the query).
	AlgorithmSHA256 *[32]byte
}

// FillTemplate returns the contract draft (YAML, such as Template or an
// example's template) with f's values written in, comments and layout
// kept as far as the YAML encoder allows. A key for a participant the
// draft lacks is refused, naming the draft's participants. The result is
// not checked against the contract's rules: Parse does that.
func FillTemplate(draft []byte, f Fill) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(draft, &doc); err != nil {
		return nil, fmt.Errorf("the draft is not YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the draft is not a YAML mapping")
	}
	top := doc.Content[0]
	if f.Name != "" {
		setScalar(top, "name", f.Name)
	}
	if !f.ExpiresAt.IsZero() {
		setScalar(top, "expires_at", f.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if len(f.Keys) > 0 {
		parts := mapValue(top, "participants")
		if parts == nil || parts.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("the draft has no participants list to write the keys into")
		}
		var ids []string
		byID := map[string]*yaml.Node{}
		for _, p := range parts.Content {
			if id := mapValue(p, "id"); id != nil {
				ids = append(ids, id.Value)
				byID[id.Value] = p
			}
		}
		keys := make([]string, 0, len(f.Keys))
		for id := range f.Keys {
			keys = append(keys, id)
		}
		slices.Sort(keys)
		for _, id := range keys {
			p := byID[id]
			if p == nil {
				return nil, fmt.Errorf("the draft has no participant %q; its participants are: %s", id, strings.Join(ids, ", "))
			}
			line := strings.TrimSpace(f.Keys[id])
			if _, err := cleanroom.ParsePublicKey(line); err != nil {
				return nil, fmt.Errorf("the key of participant %s: %w", id, err)
			}
			setScalar(p, "public_key", line)
		}
	}
	if f.Measurement != nil || f.Platform != "" {
		co := mapValue(top, "coordinator")
		if co == nil || co.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("the draft has no coordinator section to write the identity document into")
		}
		if f.Platform != "" {
			setScalar(co, "platform", string(f.Platform))
		}
		if f.Measurement != nil {
			m := mapValue(co, "measurements")
			seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle,
				Content: []*yaml.Node{{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: hex.EncodeToString(f.Measurement[:])}}}
			if m == nil {
				co.Content = append(co.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "measurements"}, seq)
			} else {
				seq.LineComment = m.LineComment
				*m = *seq
			}
		}
		if f.SimulatedRoot != nil {
			setScalar(co, "simulated_root_sha256", hex.EncodeToString(f.SimulatedRoot[:]))
		}
	}
	if f.AlgorithmSHA256 != nil {
		a := mapValue(top, "algorithm")
		if a == nil || a.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("the draft has no algorithm section to write the query's digest into")
		}
		setScalar(a, "sha256", hex.EncodeToString(f.AlgorithmSHA256[:]))
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// mapValue returns the value of key in mapping m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setScalar sets key of mapping m to the quoted string value, keeping the
// old value's comments, or appends the key.
func setScalar(m *yaml.Node, key, value string) {
	v := &yaml.Node{Kind: yaml.ScalarNode, Style: yaml.DoubleQuotedStyle, Value: value}
	if old := mapValue(m, key); old != nil {
		v.LineComment, v.HeadComment, v.FootComment = old.LineComment, old.HeadComment, old.FootComment
		*old = *v
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
}
