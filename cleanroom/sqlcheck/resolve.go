package sqlcheck

import (
	"fmt"
	"strconv"
	"strings"
)

// Name resolution for the privacy analysis, following DuckDB's binder: a
// name is looked up in the query node's own relations (a USING join's
// merged columns first), then, where the clause allows, among the select
// list's aliases, then in the enclosing scopes — the FROM siblings of a
// lateral subquery, the query of a correlated subquery. Lambda parameters
// shadow everything. Where DuckDB would report an ambiguity the analysis
// refuses; where it cannot tell what DuckDB would pick, it refuses too.

// problem is why a name did not resolve to one column.
type problem int

const (
	resolved problem = iota
	notFound
	ambiguous
	unnamed // a relation over a protected dataset has columns without a name
	maybe   // not among the named columns, but an unprotected relation has unnamed ones
)

// colVal is the value of a relation's column i.
func (a *analyzer) colVal(rel *relation, i int) val {
	c := rel.cols[i]
	v := val{unit: c.unit, srcs: c.srcs, bare: true, inst: rel.inst, name: c.name}
	if c.unit >= 0 {
		v.dataset = a.occDataset[c.unit]
		v.via = map[bool]string{true: "", false: "a join or WHERE equality"}[c.exact]
	}
	if c.unit >= 0 && c.exact {
		v.id = "u" + strconv.Itoa(c.unit)
	} else {
		v.id = fmt.Sprintf("c%d.%d", rel.inst, i)
	}
	return v
}

// findLocal looks names up in one scope's relations, without aliases.
func (a *analyzer) findLocal(names []string, sc *nameScope) (val, problem) {
	if len(names) == 0 {
		return noVal(), notFound
	}
	if len(names) >= 2 {
		var rel *relation
		for _, r := range sc.rels {
			if r.qual != "" && equalFold(r.qual, names[0]) {
				if rel != nil {
					return noVal(), ambiguous
				}
				rel = r
			}
		}
		if rel != nil {
			for i, c := range rel.cols {
				if c.name != "" && equalFold(c.name, names[1]) {
					v := a.colVal(rel, i)
					if len(names) > 2 {
						return fieldOf(v), resolved
					}
					return v, resolved
				}
			}
			if !rel.known {
				if rel.protected {
					return noVal(), unnamed
				}
				return noVal(), resolved // a column of an unprotected relation
			}
			return noVal(), notFound
		}
		// a.b where a is a column: a struct field.
		v, p := a.findLocal(names[:1], sc)
		if p == resolved {
			return fieldOf(v), resolved
		}
		return noVal(), p
	}
	name := names[0]
	for _, m := range sc.merged {
		if equalFold(m.name, name) {
			return m.val, resolved
		}
	}
	found, count := noVal(), 0
	unknown, unknownProtected, hitProtected := false, false, false
	for _, r := range sc.rels {
		hit := false
		for i, c := range r.cols {
			if !c.hidden && c.name != "" && equalFold(c.name, name) {
				if !hit {
					found, count, hit = a.colVal(r, i), count+1, true
					hitProtected = hitProtected || r.protected
				}
			}
		}
		if !r.known && !hit {
			unknown = true
			unknownProtected = unknownProtected || r.protected
		}
	}
	switch {
	case count > 1 && !hitProtected:
		return noVal(), resolved // DuckDB's binder refuses it
	case count > 1:
		return noVal(), ambiguous
	case count == 1:
		return found, resolved
	case unknownProtected:
		return noVal(), unnamed
	case unknown:
		return noVal(), maybe
	}
	return noVal(), notFound
}

// fieldOf is the value of a field of a struct column.
func fieldOf(v val) val {
	out := noVal()
	out.srcs = v.srcs
	if v.unit >= 0 {
		// Contract types are scalars: a privacy unit has no fields.
		out.unit, out.dataset, out.name, out.via = v.unit, v.dataset, v.name, v.via
	}
	return out
}

// lookup finds an unqualified name among some relations, quietly (for
// USING joins).
func (a *analyzer) lookup(name string, sc *nameScope) (val, bool) {
	v, p := a.findLocal([]string{name}, sc)
	return v, p == resolved && v.bare
}

// lookup2 resolves a column reference quietly through the scopes (for the
// equalities gathered before the analysis).
func (a *analyzer) lookup2(x *ColumnRef, sc *nameScope) (val, bool) {
	for s := sc; s != nil; s = s.outer {
		v, p := a.findLocal(x.Names, s)
		if p == resolved {
			return v, v.bare
		}
		if p != notFound {
			return noVal(), false
		}
	}
	return noVal(), false
}

// columnRef resolves a column reference and returns its value; a column
// that a join equates with a privacy unit is read as that unit.
func (a *analyzer) columnRef(x *ColumnRef, cx *ectx) val {
	names := x.Names
	full := strings.Join(names, ".")
	if len(names) == 1 {
		for i := len(cx.sc.lambdas) - 1; i >= 0; i-- {
			if equalFold(cx.sc.lambdas[i].name, names[0]) {
				return cx.sc.lambdas[i].val
			}
		}
	}
	v, p := a.findLocal(names, cx.sc)
	if p == resolved && v.bare {
		v.ref = names
	}
	if len(names) == 1 && cx.allowAlias {
		if av, ok := findAlias(names[0], cx.sc); ok {
			switch {
			case p == notFound:
				v, p = av, resolved
			case p == resolved && cx.aliasUnion:
				// ORDER BY and HAVING may read either: take both.
				if av.unit >= 0 {
					v = av
				} else if v.unit < 0 {
					v.srcs, v.agg, v.bare = mergeSrcs(v.srcs, av.srcs), v.agg || av.agg, false
				}
			}
		}
	}
	if p == maybe {
		// Perhaps an unnamed column of an unprotected relation; but if an
		// enclosing scope has a protected column of that name, the analysis
		// cannot tell which DuckDB reads.
		for s := cx.sc.outer; s != nil; s = s.outer {
			if ov, op := a.findLocal(names, s); (op == resolved && ov.protected()) || op == unnamed {
				a.refuse(RuleAnalysable, full, x.Location, "the algorithm names "+full+", which may be a column without a name of a relation beside it, or a protected column outside it",
					": the analysis cannot tell which; name every column with AS, or qualify the name")
				return noVal()
			}
		}
		return noVal()
	}
	switch p {
	case ambiguous:
		a.refuse(RuleAnalysable, full, x.Location, "the algorithm names the column "+full+", which more than one relation has", "; qualify it with its relation")
		return noVal()
	case unnamed:
		a.refuse(RuleAnalysable, full, x.Location, "the algorithm names the column "+full+", which the analysis cannot find among the named columns of a relation over a protected dataset",
			": name every column of a CTE or subquery over a protected dataset with AS")
		return noVal()
	case notFound:
		// The enclosing scopes: lateral siblings, then correlated outer
		// queries.
		for s := cx.sc.outer; s != nil; s = s.outer {
			ov, op := a.findLocal(names, s)
			if op == notFound {
				continue
			}
			if op != resolved {
				a.refuse(RuleAnalysable, full, x.Location, "the algorithm names the column "+full+", which the analysis cannot resolve unambiguously", "; qualify it with its relation")
				return noVal()
			}
			if ov.protected() {
				switch {
				case s.lateral:
					a.refuse(RuleAnalysable, full, x.Location, "a subquery or table function in FROM reads "+full+" of a protected relation beside it (a lateral join)",
						": the analysis does not follow lateral joins over protected data; join on keys with ON or USING")
					return noVal()
				case s.outerAgg:
					a.refuse(RuleAnalysable, full, x.Location, "a subquery in an aggregation's output reads "+full+" of the protected relation outside it",
						": the analysis does not follow it; join instead")
					return noVal()
				}
			}
			a.outerRefs = append(a.outerRefs, ov)
			return a.unitLike(ov, s.uf, cx.sc.uf)
		}
		for s := cx.sc; s != nil; s = s.outer {
			if a.scopeProtected(s) {
				a.refuse(RuleAnalysable, full, x.Location, "the algorithm names "+full+", which the analysis cannot resolve to a column", "")
				break
			}
		}
		return noVal()
	}
	return a.unitLike(v, cx.sc.uf)
}

// findAlias finds a select-list alias of the current query node.
func findAlias(name string, sc *nameScope) (val, bool) {
	for _, al := range sc.aliases {
		if equalFold(al.name, name) {
			return al.val, true
		}
	}
	return noVal(), false
}

// unitLike reads a bare column that an equality joins to a privacy unit as
// that unit (the lowest occurrence, when it meets several).
func (a *analyzer) unitLike(v val, ufs ...unionFind) val {
	if v.unit >= 0 || v.id == "" {
		return v
	}
	for _, uf := range ufs {
		if uf == nil {
			continue
		}
		root := uf.find(v.id)
		best := -1
		if occ, ok := unitID(root); ok {
			best = occ
		}
		for k := range uf {
			if occ, ok := unitID(k); ok && uf.find(k) == root && (best < 0 || occ < best) {
				best = occ
			}
		}
		if best >= 0 {
			v.unit, v.dataset, v.via = best, a.occDataset[best], "a join or WHERE equality"
			return v
		}
	}
	return v
}

// unitID reads the identity "u<occurrence>" of a privacy unit.
func unitID(id string) (int, bool) {
	if !strings.HasPrefix(id, "u") {
		return 0, false
	}
	n, err := strconv.Atoi(id[1:])
	return n, err == nil
}
