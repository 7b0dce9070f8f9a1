package contracts

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// An SEV-SNP contract keeps the encoding, and so the id, it has without the
// other platforms: its coordinator map holds exactly the five keys it always
// had, and a platform's section appears only on that platform.
func TestSEVSNPCanonicalEncodingUnchanged(t *testing.T) {
	keys := func(text string) []string {
		c, err := Parse([]byte(text), ParseOptions{Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := cbor.Unmarshal(c.CanonicalBytes(), &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range m["coordinator"].(map[any]any) {
			out = append(out, k.(string))
		}
		slices.Sort(out)
		return out
	}
	snp := []string{"allow_debug", "measurements", "min_tcb", "platform", "simulated_root_sha256"}
	if got := keys(baseYAML()); !slices.Equal(got, snp) {
		t.Fatalf("SEV-SNP coordinator keys %v, want %v", got, snp)
	}
	for p, section := range platformSections {
		want := slices.Sorted(slices.Values(append(slices.Clone(snp), string(p.Real()))))
		if got := keys(withCoordinator(section)); !slices.Equal(got, want) {
			t.Errorf("%s coordinator keys %v, want %v", p, got, want)
		}
	}
}

var (
	h32 = strings.Repeat("11", 32)
	h48 = strings.Repeat("22", 48)
	h16 = strings.Repeat("03", 16)
)

// coordinatorYAML replaces baseYAML's coordinator section.
func withCoordinator(section string) string {
	base := baseYAML()
	i := strings.Index(base, "coordinator:\n")
	return base[:i] + "coordinator:\n" + section
}

var platformSections = map[Platform]string{
	PlatformTDX: `  platform: tdx
  tdx:
    mrtd: ["` + h48 + `"]
    rtmr: [["` + h48 + `", "` + h48 + `", "` + h48 + `", "` + h48 + `"]]
    min_tee_tcb_svn: "` + h16 + `"
    allow_debug: false
`,
	PlatformTDXSimulated: `  platform: tdx-simulated
  simulated_root_sha256: "` + h32 + `"
  tdx: {mrtd: ["` + h48 + `"]}
`,
	PlatformNitro: `  platform: nitro
  nitro: {pcr0: ["` + h48 + `"], pcr1: ["` + h48 + `"], pcr2: []}
`,
	PlatformNitroSimulated: `  platform: nitro-simulated
  simulated_root_sha256: "` + h32 + `"
  allow_debug: true
  nitro: {pcr0: ["` + h48 + `"]}
`,
	PlatformCCA: `  platform: cca
  cca:
    rim: ["` + h32 + `", "` + h48 + `"]
    platform_refs:
      iak_sha256: ["` + h32 + `"]
      implementation_ids: ["` + h32 + `"]
      sw_measurements: ["` + h32 + `"]
`,
	PlatformCCASimulated: `  platform: cca-simulated
  simulated_root_sha256: "` + h32 + `"
  cca: {rim: ["` + strings.Repeat("44", 64) + `"]}
`,
}

func TestPlatformSectionsParse(t *testing.T) {
	for p, section := range platformSections {
		t.Run(string(p), func(t *testing.T) {
			c, err := Parse([]byte(withCoordinator(section)), ParseOptions{Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			cp := c.Coordinator
			if cp.Platform != p {
				t.Fatalf("platform %q", cp.Platform)
			}
			if (cp.TDX != nil) != (p.Real() == PlatformTDX) || (cp.Nitro != nil) != (p.Real() == PlatformNitro) || (cp.CCA != nil) != (p.Real() == PlatformCCA) {
				t.Fatalf("sections %+v", cp)
			}
			if p.Simulated() != (cp.SimulatedRootSHA256 != nil) {
				t.Fatal("simulated root")
			}
			switch p {
			case PlatformTDX:
				if len(cp.TDX.RTMR) != 1 || cp.TDX.MinTEETCBSVN[15] != 3 || len(cp.TDX.MRTD) != 1 {
					t.Fatalf("%+v", cp.TDX)
				}
			case PlatformCCA:
				if len(cp.CCA.RIM) != 2 || len(cp.CCA.RIM[1]) != 48 || len(cp.CCA.Platform.IAKSHA256) != 1 {
					t.Fatalf("%+v", cp.CCA)
				}
			}
		})
	}
}

// Every reference value is in the contract id.
func TestIDCoversReferenceValues(t *testing.T) {
	edits := map[Platform][][2]string{
		PlatformTDX:   {{"mrtd: [\"22", "mrtd: [\"23"}, {"allow_debug: false", "allow_debug: true"}, {h16, strings.Repeat("04", 16)}, {"rtmr: [[\"22", "rtmr: [[\"24"}},
		PlatformNitro: {{"pcr0: [\"22", "pcr0: [\"25"}, {"pcr1: [\"22", "pcr1: [\"26"}, {"pcr2: []", "pcr2: [\"" + h48 + "\"]"}},
		PlatformCCA:   {{"rim: [\"11", "rim: [\"12"}, {"iak_sha256: [\"11", "iak_sha256: [\"13"}, {"implementation_ids: [\"11", "implementation_ids: [\"14"}, {"sw_measurements: [\"11", "sw_measurements: [\"15"}},
	}
	for p, list := range edits {
		base, err := Parse([]byte(withCoordinator(platformSections[p])), ParseOptions{Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list {
			text := strings.Replace(withCoordinator(platformSections[p]), e[0], e[1], 1)
			c, err := Parse([]byte(text), ParseOptions{Now: testNow})
			if err != nil {
				t.Fatalf("%s %q: %v", p, e[1], err)
			}
			if c.ID() == base.ID() {
				t.Errorf("%s: editing %q does not change the id", p, e[0])
			}
		}
	}
}

func TestBadPlatformSections(t *testing.T) {
	snp := "  platform: sev-snp\n  measurements: [\"" + measurement + "\"]\n"
	cases := []struct {
		name, section, field, msg string
	}{
		{"tdx without tdx", "  platform: tdx\n", "coordinator.tdx", "is required"},
		{"tdx with snp measurements", platformSections[PlatformTDX] + "  measurements: [\"" + measurement + "\"]\n", "coordinator.measurements", "coordinator.tdx"},
		{"tdx with top-level allow_debug", platformSections[PlatformTDX] + "  allow_debug: true\n", "coordinator.allow_debug", "tdx.allow_debug"},
		{"tdx with min_tcb", platformSections[PlatformTDX] + "  min_tcb: {bootloader: 1, tee: 0, snp: 0, microcode: 0}\n", "coordinator.min_tcb", "SEV-SNP"},
		{"tdx empty mrtd", "  platform: tdx\n  tdx: {mrtd: []}\n", "coordinator.tdx.mrtd", "at least one"},
		{"tdx short mrtd", "  platform: tdx\n  tdx: {mrtd: [\"" + h32 + "\"]}\n", "coordinator.tdx.mrtd[0]", "96 hex digits"},
		{"tdx three rtmrs", "  platform: tdx\n  tdx: {mrtd: [\"" + h48 + "\"], rtmr: [[\"" + h48 + "\", \"" + h48 + "\", \"" + h48 + "\"]]}\n", "coordinator.tdx.rtmr[0]", "four registers"},
		{"tdx unknown field", "  platform: tdx\n  tdx: {mrtd: [\"" + h48 + "\"], mrowner: []}\n", "coordinator.tdx.mrowner", "unknown field"},
		{"tdx bad svn", "  platform: tdx\n  tdx: {mrtd: [\"" + h48 + "\"], min_tee_tcb_svn: \"01\"}\n", "coordinator.tdx.min_tee_tcb_svn", "32 hex digits"},
		{"tdx simulated without root", "  platform: tdx-simulated\n  tdx: {mrtd: [\"" + h48 + "\"]}\n", "coordinator.simulated_root_sha256", "is required"},
		{"snp with tdx section", snp + "  tdx: {mrtd: [\"" + h48 + "\"]}\n", "coordinator.tdx", "must be absent"},
		{"nitro without pcr0", "  platform: nitro\n  nitro: {pcr1: [\"" + h48 + "\"]}\n", "coordinator.nitro.pcr0", "required"},
		{"nitro empty pcr0", "  platform: nitro\n  nitro: {pcr0: []}\n", "coordinator.nitro.pcr0", "at least one"},
		{"nitro pcr listed twice", "  platform: nitro\n  nitro: {pcr0: [\"" + h48 + "\", \"" + h48 + "\"]}\n", "coordinator.nitro.pcr0[1]", "twice"},
		{"nitro with cca section", platformSections[PlatformNitro] + "  cca: {rim: [\"" + h32 + "\"]}\n", "coordinator.cca", "must be absent"},
		{"nitro real with root", platformSections[PlatformNitro] + "  simulated_root_sha256: \"" + h32 + "\"\n", "coordinator.simulated_root_sha256", "AWS"},
		{"cca without iak pin", "  platform: cca\n  cca: {rim: [\"" + h32 + "\"]}\n", "coordinator.cca.platform_refs.iak_sha256", "is required"},
		{"cca simulated with iak pin", "  platform: cca-simulated\n  simulated_root_sha256: \"" + h32 + "\"\n  cca: {rim: [\"" + h32 + "\"], platform_refs: {iak_sha256: [\"" + h32 + "\"]}}\n", "coordinator.cca.platform_refs.iak_sha256", "must be absent"},
		{"cca odd rim", "  platform: cca\n  cca: {rim: [\"" + strings.Repeat("11", 20) + "\"], platform_refs: {iak_sha256: [\"" + h32 + "\"]}}\n", "coordinator.cca.rim[0]", "128 hex digits"},
		{"cca real with root", platformSections[PlatformCCA] + "  simulated_root_sha256: \"" + h32 + "\"\n", "coordinator.simulated_root_sha256", "iak_sha256"},
		{"snp without measurements", "  platform: sev-snp\n", "coordinator.measurements", "at least one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withCoordinator(tc.section)), ParseOptions{Now: testNow})
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("want a *ParseError, got %v", err)
			}
			for _, p := range pe.Problems {
				if p.Field == tc.field && strings.Contains(p.Msg, tc.msg) {
					if p.Line == 0 {
						t.Errorf("no line: %v", p)
					}
					return
				}
			}
			t.Fatalf("no problem for %q containing %q in:\n%v", tc.field, tc.msg, err)
		})
	}
}

// FlowYAML writes a coordinator section that parses back to the same
// values, for every platform.
func TestFlowYAMLRoundTrips(t *testing.T) {
	for p, section := range platformSections {
		c, err := Parse([]byte(withCoordinator(section)), ParseOptions{Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(withCoordinator(""), "coordinator:\n", "coordinator: "+c.Coordinator.FlowYAML()+"\n", 1)
		c2, err := Parse([]byte(text), ParseOptions{Now: testNow})
		if err != nil {
			t.Fatalf("%s: %v\n%s", p, err, c.Coordinator.FlowYAML())
		}
		if c2.ID() != c.ID() {
			t.Errorf("%s: %s does not parse back to the same contract", p, c.Coordinator.FlowYAML())
		}
	}
}
