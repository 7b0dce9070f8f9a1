package sqlcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
)

// CheckPlan is the second, independent look at an algorithm: it reads the
// logical plan DuckDB's binder made of it (json_serialize_plan, before
// optimisation), where every name is resolved and every macro expanded,
// and refuses a plan that
//
//   - reads anything through a table function (LOGICAL_GET) other than an
//     allowed row generator or one of scans — the table functions behind
//     the engine's dataset views. Catalog views resolve to scans of
//     duckdb_settings(), duckdb_tables() and the like, so a catalog
//     relation the parse-tree check let through by mistake stops here;
//   - calls a function ExpressionFunctions refuses (BOUND_FUNCTION,
//     BOUND_AGGREGATE, BOUND_WINDOW), for instance inside a macro's body.
//
// The plan needs the datasets, so it can be checked only where they are
// loaded: the engine does so before it runs an algorithm. A *SerializeError
// is DuckDB's own error (a binder error: an unknown column, a type
// mismatch).
func CheckPlan(serialized []byte, scans []string) error {
	dec := json.NewDecoder(bytes.NewReader(serialized))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return unreadable("", "the plan is not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return unreadable("", "the plan has data after the JSON value")
	}
	top, ok := root.(map[string]any)
	if !ok {
		return unreadable("", "the plan is not a JSON object")
	}
	if failed, _ := top["error"].(bool); failed {
		e := &SerializeError{}
		e.Type, _ = top["error_type"].(string)
		e.Subtype, _ = top["error_subtype"].(string)
		e.Message, _ = top["error_message"].(string)
		return e
	}
	if _, ok := top["plans"].([]any); !ok {
		return unreadable("", "the plan has no list of plans")
	}
	allowed := map[string]bool{}
	for n, v := range tableFunctions {
		if v.Allowed {
			allowed[n] = true
		}
	}
	for _, s := range scans {
		allowed[asciiLower(s)] = true
	}
	return walkPlan(root, allowed)
}

// walkPlan visits every object of the plan, depth first, keys in order.
func walkPlan(v any, scans map[string]bool) error {
	switch n := v.(type) {
	case map[string]any:
		if n["type"] == "LOGICAL_GET" {
			name, _ := n["name"].(string)
			if !scans[asciiLower(name)] {
				why := "reads DuckDB's catalog or storage, not the datasets"
				if v, ok := tableFunctions[asciiLower(name)]; ok && !v.Allowed {
					why = v.Note
				}
				return &Refusal{Rule: RuleRelation, Construct: name, Location: NoLocation,
					Reason: fmt.Sprintf("the algorithm's plan reads through the table function %s, which %s; an algorithm may read only the contract's datasets, its CTEs and the table functions %s",
						name, why, allowedTableFunctions())}
			}
		}
		switch n["expression_class"] {
		case "BOUND_FUNCTION", "BOUND_AGGREGATE", "BOUND_WINDOW":
			name, _ := n["name"].(string)
			if v, ok := exprFunctions[asciiLower(name)]; ok && !v.Allowed {
				return &Refusal{Rule: RuleFunction, Construct: name, Location: NoLocation,
					Reason: fmt.Sprintf("the algorithm's plan calls %s, which %s", name, v.Note)}
			}
		}
		for _, k := range slices.Sorted(maps.Keys(n)) {
			if err := walkPlan(n[k], scans); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range n {
			if err := walkPlan(e, scans); err != nil {
				return err
			}
		}
	}
	return nil
}
