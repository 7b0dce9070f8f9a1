package engine

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AllowedTableFunctions are the only table functions an algorithm may call:
// pure generators of rows from their arguments. Every other table function
// either touches the world outside the loaded datasets (read_csv, glob, ...),
// evaluates strings as SQL (query, query_table), or acts on the session
// (enable_logging, checkpoint, ...), and is refused by the statement check.
var AllowedTableFunctions = []string{"range", "generate_series", "unnest"}

// deniedFunctions are scalar functions an algorithm may not call because
// they read the coordinator's environment rather than the datasets.
var deniedFunctions = []string{"current_setting", "getenv", "getvariable"}

// maxQueryBytes bounds the algorithm text the statement check parses.
const maxQueryBytes = 1 << 20

// CheckQuery reports whether query may run as an algorithm: DuckDB's own
// parser must find exactly one statement, that statement must be a SELECT
// (WITH ... SELECT, UNION, VALUES and FROM-first queries are SELECTs), and it
// may call no table function outside AllowedTableFunctions. A refusal is a
// *RefusalError at LayerStatement that names what was found. CheckQuery
// parses the text inside a locked-down DuckDB holding no data, and never
// executes it; Session.Run repeats the check in the run's own database.
func CheckQuery(query string) error {
	ctx := context.Background()
	connector, err := open(ctx, Config{MemoryLimit: 64 << 20, Threads: 1})
	if err != nil {
		return err
	}
	defer connector.Close()
	conn, err := connector.Connect(ctx)
	if err != nil {
		return fmt.Errorf("engine: connecting to the statement-check database: %w", err)
	}
	defer conn.Close()
	return checkStatement(ctx, conn, query)
}

// checkStatement runs the statement check on a locked-down connection.
func checkStatement(ctx context.Context, conn driver.Conn, query string) error {
	const rule = "the algorithm must be exactly one SELECT statement"
	if len(query) > maxQueryBytes {
		return refuse(LayerStatement, nil, "the algorithm is %d bytes; at most %d are accepted", len(query), maxQueryBytes)
	}
	if !utf8.ValidString(query) {
		return refuse(LayerStatement, nil, "the algorithm text is not valid UTF-8")
	}
	if strings.IndexByte(query, 0) >= 0 {
		return refuse(LayerStatement, nil, "the algorithm text contains a NUL byte")
	}
	parsed, err := serialize(ctx, conn, query)
	if err != nil {
		return err
	}
	if parsed.Error {
		if parsed.ErrorType == "parser" {
			return refuse(LayerStatement, nil, "DuckDB cannot parse the algorithm: %s", parsed.ErrorMessage)
		}
		// json_serialize_sql serialises SELECT statements only; any other
		// statement makes it fail as a whole.
		kinds := statementKinds(query)
		if len(kinds) == 0 || !slices.ContainsFunc(kinds, func(k string) bool { return !selectLike(k) }) {
			return refuse(LayerStatement, nil, "%s; DuckDB's parser found a statement that is not a SELECT (%s)", rule, parsed.ErrorMessage)
		}
		return refuse(LayerStatement, nil, "%s; found %s", rule, describeKinds(kinds))
	}
	switch n := len(parsed.Statements); {
	case n == 0:
		return refuse(LayerStatement, nil, "%s; found no statement", rule)
	case n > 1:
		kinds := statementKinds(query)
		if len(kinds) != n {
			kinds = slices.Repeat([]string{"SELECT"}, n)
		}
		return refuse(LayerStatement, nil, "%s; found %s", rule, describeKinds(kinds))
	}
	var calls []call
	collectCalls(parsed.Statements[0], &calls)
	for _, c := range calls {
		name := strings.ToLower(c.name)
		if c.table && !slices.Contains(AllowedTableFunctions, name) {
			return refuse(LayerStatement, nil, "the algorithm calls the table function %s; an algorithm may read only the contract's datasets and the table functions %s",
				c.name, strings.Join(AllowedTableFunctions, ", "))
		}
		if slices.Contains(deniedFunctions, name) {
			return refuse(LayerStatement, nil, "the algorithm calls %s, which reads the coordinator's environment rather than the datasets", c.name)
		}
	}
	return nil
}

// parsedSQL is the output of DuckDB's json_serialize_sql.
type parsedSQL struct {
	Error        bool   `json:"error"`
	ErrorType    string `json:"error_type"`
	ErrorMessage string `json:"error_message"`
	Statements   []any  `json:"statements"`
}

// serialize parses query with DuckDB's parser (json_serialize_sql), which
// parses without binding or executing anything.
func serialize(ctx context.Context, conn driver.Conn, query string) (*parsedSQL, error) {
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, "SELECT CAST(json_serialize_sql(CAST($1 AS VARCHAR)) AS VARCHAR)",
		[]driver.NamedValue{{Ordinal: 1, Value: query}})
	if err != nil {
		return nil, fmt.Errorf("engine: running DuckDB's parser on the algorithm: %w", err)
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("engine: running DuckDB's parser on the algorithm: %w", err)
	}
	text, ok := dest[0].(string)
	if !ok {
		return nil, fmt.Errorf("engine: DuckDB's parser returned %T, want a JSON string", dest[0])
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var p parsedSQL
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("engine: reading DuckDB's parse of the algorithm: %w", err)
	}
	return &p, nil
}

// call is a function call found in a parse tree.
type call struct {
	name  string
	table bool // a table function (in FROM), not a scalar or aggregate
}

// collectCalls appends every function call of the parse tree, at any depth
// (subqueries, CTEs, joins, set operations, lambdas).
func collectCalls(node any, out *[]call) {
	switch n := node.(type) {
	case map[string]any:
		if n["type"] == "TABLE_FUNCTION" {
			name := "?"
			if fn, ok := n["function"].(map[string]any); ok {
				if s, ok := fn["function_name"].(string); ok {
					name = s
				}
			}
			*out = append(*out, call{name: name, table: true})
		} else if n["class"] == "FUNCTION" {
			if s, ok := n["function_name"].(string); ok {
				*out = append(*out, call{name: s})
			}
		}
		for _, k := range slices.Sorted(maps.Keys(n)) {
			collectCalls(n[k], out)
		}
	case []any:
		for _, v := range n {
			collectCalls(v, out)
		}
	}
}

// statementKinds splits query into statements at top-level semicolons and
// returns each statement's first keyword, upper-cased. It understands
// quoted strings and identifiers, dollar quotes and comments. It only names
// statements in refusals; whether a query is accepted is DuckDB's parser's
// decision.
func statementKinds(query string) []string {
	var kinds []string
	var cur bytes.Buffer
	flush := func() {
		if k := firstKeyword(cur.String()); k != "" {
			kinds = append(kinds, k)
		}
		cur.Reset()
	}
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == ';':
			flush()
			i++
		case c == '\'' || c == '"':
			j := skipQuoted(query, i, c)
			cur.WriteString(" ? ")
			i = j
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			cur.WriteByte(' ')
			i += j
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			i = skipBlockComment(query, i)
			cur.WriteByte(' ')
		case c == '$':
			if j, ok := skipDollarQuoted(query, i); ok {
				cur.WriteString(" ? ")
				i = j
			} else {
				cur.WriteByte(c)
				i++
			}
		default:
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	return kinds
}

// skipQuoted returns the index after the quoted token starting at i; a
// doubled quote stands for itself.
func skipQuoted(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// skipBlockComment returns the index after the (possibly nested) block
// comment starting at i.
func skipBlockComment(s string, i int) int {
	depth := 0
	for j := i; j < len(s)-1; j++ {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j++
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(s)
}

// skipDollarQuoted skips a $tag$...$tag$ string starting at i.
func skipDollarQuoted(s string, i int) (int, bool) {
	end := strings.IndexByte(s[i+1:], '$')
	if end < 0 {
		return 0, false
	}
	tag := s[i : i+1+end+1]
	for _, r := range tag[1 : len(tag)-1] {
		if !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return 0, false
		}
	}
	if len(tag) > 2 && unicode.IsDigit(rune(tag[1])) {
		return 0, false
	}
	close := strings.Index(s[i+len(tag):], tag)
	if close < 0 {
		return len(s), true
	}
	return i + len(tag) + close + len(tag), true
}

// firstKeyword returns the first word of a statement, skipping opening
// parentheses, upper-cased; "" for an empty statement.
func firstKeyword(stmt string) string {
	stmt = strings.TrimLeft(stmt, " \t\r\n\f(")
	end := strings.IndexFunc(stmt, func(r rune) bool { return !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) })
	if end < 0 {
		end = len(stmt)
	}
	if end == 0 {
		if stmt == "" {
			return ""
		}
		return "?"
	}
	return strings.ToUpper(stmt[:end])
}

// selectLike reports whether a statement's first keyword can start a SELECT.
func selectLike(kind string) bool {
	switch kind {
	case "SELECT", "WITH", "FROM", "VALUES", "TABLE":
		return true
	}
	return false
}

func describeKinds(kinds []string) string {
	noun := "statements"
	if len(kinds) == 1 {
		noun = "statement"
	}
	return fmt.Sprintf("%d %s: %s", len(kinds), noun, strings.Join(kinds, ", "))
}

// ModelCalls returns, in parse-tree order, the name of every call in query
// to one of models (a contract's model names): the hook through which an
// analysis of the query (the output modes of SPEC §7.1) finds the models'
// calls. A model call is an ordinary scalar function call in DuckDB's parse
// tree — a node of class FUNCTION whose function_name is the model's name
// (DuckDB lower-cases unquoted names; the comparison ignores case) — and
// docs/models.md says how such an analysis must treat it. The query is
// parsed, never executed, in a locked-down DuckDB holding no data; a query
// that does not parse is an error.
func ModelCalls(query string, models []string) ([]string, error) {
	ctx := context.Background()
	connector, err := open(ctx, Config{MemoryLimit: 64 << 20, Threads: 1})
	if err != nil {
		return nil, err
	}
	defer connector.Close()
	conn, err := connector.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("engine: connecting to the parser's database: %w", err)
	}
	defer conn.Close()
	parsed, err := serialize(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	if parsed.Error {
		return nil, refuse(LayerStatement, nil, "DuckDB cannot parse the algorithm: %s", parsed.ErrorMessage)
	}
	var calls []call
	for _, st := range parsed.Statements {
		collectCalls(st, &calls)
	}
	var out []string
	for _, c := range calls {
		if i := slices.IndexFunc(models, func(m string) bool { return strings.EqualFold(m, c.name) }); i >= 0 && !c.table {
			out = append(out, models[i])
		}
	}
	return out, nil
}
