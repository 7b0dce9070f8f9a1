package contracts

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
)

// validator checks what decoding cannot: references between sections,
// uniqueness, and policies that could never be met.
type validator struct {
	*decoder
	c     *Contract
	lines lineMap
}

func (v *validator) problem(path string, format string, args ...any) {
	v.problems = append(v.problems, &FieldError{Field: path, Line: v.lineOf(path), Msg: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of path or, for a field that is absent, of the
// nearest enclosing field that is present.
func (v *validator) lineOf(path string) int {
	for path != "" {
		if l, ok := v.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func (v *validator) validate(opts ParseOptions) {
	c := v.c
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !opts.AllowExpired && c.Expired(now) {
		v.problem("expires_at", "the contract expired at %s", c.ExpiresAt.Format(time.RFC3339))
	}
	v.participants()
	v.datasets()
	v.algorithm()
	v.checkParameters()
	v.models()
	v.output()
	v.coordinator()
}

func (v *validator) participants() {
	c := v.c
	if len(c.Participants) == 0 {
		v.problem("participants", "a contract needs at least one participant")
	}
	if len(c.Participants) > MaxParticipants {
		v.problem("participants", "%d participants is more than the limit of %d", len(c.Participants), MaxParticipants)
	}
	ids := map[string]int{}
	signing := map[string]int{} // Ed25519 part of each key
	hpke := map[string]int{}    // HPKE part of each key
	for i, p := range c.Participants {
		path := index("participants", i)
		if j, dup := ids[p.ID]; dup {
			v.problem(path+".id", "participant id %q is already used by participants[%d]", p.ID, j)
		}
		ids[p.ID] = i
		// Each half of a key must be a participant's own: signatures and
		// TLS name a participant by the Ed25519 key, and results are
		// encrypted to the HPKE key.
		raw := p.PublicKey.Bytes()
		sk, hk := string(raw[:ed25519.PublicKeySize]), string(raw[ed25519.PublicKeySize:])
		js, sameSigning := signing[sk]
		jh, sameHPKE := hpke[hk]
		const own = "each participant needs a key of its own (cleanroom keygen)"
		if sameSigning && sameHPKE && js == jh {
			v.problem(path+".public_key", "participants %q and %q (participants[%d]) have the same public key; %s", p.ID, c.Participants[js].ID, js, own)
		} else {
			if sameSigning {
				v.problem(path+".public_key", "participants %q and %q (participants[%d]) share one Ed25519 signing key, the first part of their public keys: their signatures and connections could not be told apart; %s",
					p.ID, c.Participants[js].ID, js, own)
			}
			if sameHPKE {
				v.problem(path+".public_key", "participants %q and %q (participants[%d]) share one HPKE encryption key, the second part of their public keys: either could read what is encrypted to the other; %s",
					p.ID, c.Participants[jh].ID, jh, own)
			}
		}
		if !sameSigning {
			signing[sk] = i
		}
		if !sameHPKE {
			hpke[hk] = i
		}
	}
}

func (v *validator) datasets() {
	c := v.c
	if len(c.Datasets) == 0 {
		v.problem("datasets", "a contract needs at least one dataset")
	}
	if len(c.Datasets) > MaxDatasets {
		v.problem("datasets", "%d datasets is more than the limit of %d", len(c.Datasets), MaxDatasets)
	}
	ids := map[string]int{}
	provides := map[string]bool{}
	for i, ds := range c.Datasets {
		path := index("datasets", i)
		if j, dup := ids[ds.ID]; dup {
			v.problem(path+".id", "dataset id %q is already used by datasets[%d]", ds.ID, j)
		}
		ids[ds.ID] = i
		v.needRole(path+".provider", ds.Provider, RoleDataProvider, "a dataset's provider")
		provides[ds.Provider] = true
		if len(ds.Columns) == 0 {
			v.problem(path+".columns", "a dataset needs at least one column")
		}
		if len(ds.Columns) > MaxColumns {
			v.problem(path+".columns", "%d columns is more than the limit of %d", len(ds.Columns), MaxColumns)
		}
		names := map[string]int{}
		for j, col := range ds.Columns {
			key := strings.ToLower(col.Name) // SQL identifiers are case-insensitive
			if k, dup := names[key]; dup {
				v.problem(index(path+".columns", j), "column %q clashes with column %q (names are case-insensitive in SQL)", col.Name, ds.Columns[k].Name)
			}
			names[key] = j
			if sqlcheck.IsReserved(col.Name) {
				v.problem(index(path+".columns", j)+".name", "column names starting with %s are reserved for the columns the engine adds to a query; rename %q", sqlcheck.ReservedPrefix, col.Name)
			}
		}
		v.privacy(path, &ds)
	}
	for i, p := range c.Participants {
		if p.Has(RoleDataProvider) && !provides[p.ID] {
			v.problem(index("participants", i), "participant %q has role data_provider but provides no dataset", p.ID)
		}
	}
}

// privacy checks a dataset's privacy unit, dimensions and aggregations.
func (v *validator) privacy(path string, ds *Dataset) {
	column := func(name string) *Column {
		for i := range ds.Columns {
			if ds.Columns[i].Name == name {
				return &ds.Columns[i]
			}
		}
		return nil
	}
	if ds.PrivacyUnit == "" {
		if ds.Dimensions != nil {
			v.problem(path+".dimensions", "needs privacy_unit: dimensions restrict the group keys over a protected dataset, and %s has no privacy unit", ds.ID)
		}
		if ds.Aggregations != nil {
			v.problem(path+".aggregations", "needs privacy_unit: aggregations restrict what may be aggregated of a protected dataset, and %s has no privacy unit", ds.ID)
		}
		return
	}
	unit := column(ds.PrivacyUnit)
	switch {
	case unit == nil:
		v.problem(path+".privacy_unit", "%q is not a column of dataset %s (names must match exactly)", ds.PrivacyUnit, ds.ID)
	case unit.Type.Kind == KindFloat64:
		v.problem(path+".privacy_unit", "column %q is a float64; a privacy unit identifies a person (an id), and floating-point values do not compare exactly", ds.PrivacyUnit)
	}
	seen := map[string]bool{}
	for i, d := range ds.Dimensions {
		p := index(path+".dimensions", i)
		switch {
		case column(d) == nil:
			v.problem(p, "%q is not a column of dataset %s", d, ds.ID)
		case d == ds.PrivacyUnit:
			v.problem(p, "%q is the privacy unit, which may never be a group key", d)
		case seen[d]:
			v.problem(p, "%q is listed twice", d)
		}
		seen[d] = true
	}
	kinds := sqlcheck.Aggregates()
	seen = map[string]bool{}
	for _, a := range ds.Aggregations {
		p := path + ".aggregations." + a.Column
		switch {
		case column(a.Column) == nil:
			v.problem(p, "%q is not a column of dataset %s", a.Column, ds.ID)
		case a.Column == ds.PrivacyUnit:
			v.problem(p, "%q is the privacy unit, which only count(DISTINCT …) may aggregate; it needs no entry", a.Column)
		}
		if len(a.Functions) == 0 {
			v.problem(p, "lists no aggregate function; omit the column instead")
		}
		fns := map[string]bool{}
		for j, f := range a.Functions {
			fp := index(p, j)
			k, ok := kinds[f]
			switch {
			case !ok:
				v.problem(fp, "%q is not an aggregate function this engine knows (lower-case DuckDB names, such as sum, avg, max, median)", f)
			case k == sqlcheck.AggregateWindow:
				v.problem(fp, "%q is a window function; windows are refused over protected data", f)
			case fns[f]:
				v.problem(fp, "%q is listed twice", f)
			}
			fns[f] = true
		}
		seen[a.Column] = true
	}
}

func (v *validator) algorithm() {
	c := v.c
	v.needRole("algorithm.provider", c.Algorithm.Provider, RoleAlgorithmProvider, "algorithm.provider")
	for i, p := range c.Participants {
		if p.Has(RoleAlgorithmProvider) && p.ID != c.Algorithm.Provider && !c.ProvidesModel(p.ID) {
			v.problem(index("participants", i), "participant %q has role algorithm_provider but provides neither the algorithm (algorithm.provider is %q) nor a model", p.ID, c.Algorithm.Provider)
		}
	}
}

func (v *validator) models() {
	c := v.c
	if len(c.Models) > MaxModels {
		v.problem("models", "%d models is more than the limit of %d", len(c.Models), MaxModels)
	}
	names := map[string]int{}
	for i, m := range c.Models {
		path := index("models", i)
		if j, dup := names[m.Name]; dup {
			v.problem(path+".name", "model name %q is already used by models[%d]", m.Name, j)
		}
		names[m.Name] = i
		v.needRole(path+".provider", m.Provider, RoleAlgorithmProvider, "a model's provider")
		if c.Dataset(m.Name) != nil {
			v.problem(path+".name", "model name %q is also a dataset id; give the function another name", m.Name)
		}
	}
}

// ProvidesModel reports whether participant id provides a model.
func (c *Contract) ProvidesModel(id string) bool {
	for _, m := range c.Models {
		if m.Provider == id {
			return true
		}
	}
	return false
}

func (v *validator) output() {
	o := &v.c.Output
	if len(o.Recipients) == 0 {
		v.problem("output.recipients", "at least one result recipient is needed")
	}
	seen := map[string]bool{}
	for i, r := range o.Recipients {
		path := index("output.recipients", i)
		if seen[r] {
			v.problem(path, "recipient %q is listed twice", r)
		}
		seen[r] = true
		v.needRole(path, r, RoleResultRecipient, "a result recipient")
	}
	for i, p := range v.c.Participants {
		if p.Has(RoleResultRecipient) && !seen[p.ID] {
			v.problem(index("participants", i), "participant %q has role result_recipient but is not in output.recipients", p.ID)
		}
	}
	v.mode()
	if o.MaxRows < 1 {
		v.problem("output.max_rows", "must be at least 1, got %d: no result could ever be released", o.MaxRows)
	}
	if o.MaxRuns < 1 {
		v.problem("output.max_runs", "must be at least 1, got %d: the algorithm could never run", o.MaxRuns)
	}
}

// mode checks the output mode and the fields that go with it (SPEC §7.1).
func (v *validator) mode() {
	c := v.c
	o := &c.Output
	explicit := o.Mode != ""
	if !explicit {
		o.Mode = o.DefaultMode()
	}
	o.modeGiven = explicit
	var protected []string
	for _, ds := range c.Datasets {
		if ds.Protected() {
			protected = append(protected, ds.ID)
		}
	}
	if o.MinGroupSize < 0 {
		v.problem("output.min_group_size", "must not be negative, got %d", o.MinGroupSize)
		return
	}
	switch o.Mode {
	case ModeCustom:
		switch {
		case o.GroupSizeColumn == "":
			v.problem("output.group_size_column", "is required with mode custom: it names the result column that counts the individuals behind each row")
		case o.MinGroupSize == 0:
			v.problems = append(v.problems, &FieldError{Field: "output.min_group_size", Line: v.lineOf("output.group_size_column"),
				Msg: "must be at least 1 with mode custom: it is the k the query's group_size_column is checked against"})
		}
		if c.Algorithm.Confidential {
			field := "output.mode"
			if !explicit {
				field = "output.group_size_column"
			}
			how := "a confidential algorithm cannot use mode custom"
			if !explicit {
				how = "a confidential algorithm cannot use group_size_column, which without output.mode means mode custom"
			}
			v.problem(field, "%s: its k would be a column of a query the other parties cannot read; declare privacy_unit on the protected datasets and use mode aggregate (the engine counts the persons itself)", how)
		}
	case ModeAggregate:
		switch {
		case o.GroupSizeColumn != "":
			v.problem("output.group_size_column", "is only for mode custom: in mode aggregate the engine counts the privacy units behind each row itself (declare privacy_unit on the datasets); for the query's own count, write mode: custom")
		case len(protected) > 0 && o.MinGroupSize == 0:
			v.problem("output.min_group_size", "is required in mode aggregate when a dataset has a privacy_unit (%s): it is the k the engine enforces (1 releases every group)", strings.Join(protected, ", "))
		case len(protected) == 0 && o.MinGroupSize > 0:
			v.problem("output.min_group_size", "has nothing to count: no dataset has a privacy_unit; in mode aggregate k counts the persons the privacy units identify, so declare privacy_unit on the datasets whose people it protects")
		}
	case ModeDifferentialPrivacy:
		if o.GroupSizeColumn != "" {
			v.problem("output.group_size_column", "is only for mode custom")
		}
		v.differentialPrivacy()
	}
}

// differentialPrivacy checks mode differential_privacy. The mode's
// parameters (output.differential_privacy) are not read by this version.
func (v *validator) differentialPrivacy() {
	v.problem("output.mode", "mode differential_privacy needs an output.differential_privacy block, which this version does not read yet")
}

func (v *validator) coordinator() {
	cp := &v.c.Coordinator
	if len(cp.Measurements) > MaxMeasurements {
		v.problem("coordinator.measurements", "%d measurements is more than the limit of %d", len(cp.Measurements), MaxMeasurements)
	}
	if cp.Platform == "" {
		return // reported by the decoder
	}
	if cp.Platform.Simulated() && cp.SimulatedRootSHA256 == nil {
		v.problem("coordinator.simulated_root_sha256", "is required with platform %s: pin the SHA-256 of the simulated coordinator's throw-away %s root (from `cleanroomd identity`)", cp.Platform, cp.Platform.Vendor())
	}
	if !cp.Platform.Simulated() && cp.SimulatedRootSHA256 != nil {
		why := cp.Platform.Vendor() + "'s real roots are built in"
		if cp.Platform == PlatformCCA {
			why = "the platform's key is pinned by coordinator.cca.platform_refs.iak_sha256"
		}
		v.problem("coordinator.simulated_root_sha256", "must be empty with platform %s: %s", cp.Platform, why)
	}
	v.platformSections()
}

// needRole checks that id names a participant holding role.
func (v *validator) needRole(path, id string, role Role, what string) {
	p := v.c.Participant(id)
	if p == nil {
		v.problem(path, "%s %q is not a participant", what, id)
		return
	}
	if !p.Has(role) {
		v.problem(path, "%s %q lacks role %s", what, id, role)
	}
}
