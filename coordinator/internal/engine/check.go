package engine

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"cleanroom.dev/cleanroom/cleanroom/sqlcheck"
)

// maxQueryBytes bounds the algorithm text the statement check parses.
const maxQueryBytes = 1 << 20

// CheckQuery reports whether query may run as an algorithm over datasets
// (the contract's dataset ids): DuckDB's own parser must find exactly one
// statement, that statement must be a SELECT (WITH ... SELECT, UNION,
// VALUES and FROM-first queries are SELECTs), and its parse tree must keep
// to the allow-lists of cleanroom/sqlcheck: it reads only datasets and its
// own CTEs, and calls only the reviewed table, scalar, aggregate and window
// functions. A refusal is a *RefusalError at LayerStatement that names
// what was found and the rule. CheckQuery parses the text inside a
// locked-down DuckDB holding no data, and never executes it; Session.Run
// repeats the check in the run's own database, and checks the bound plan
// too.
func CheckQuery(query string, datasets []string) error {
	return CheckQueryWithModels(query, datasets, nil)
}

// CheckQueryWithModels is CheckQuery for a contract that names models:
// models are its model names, scalar functions the algorithm may call
// besides the allowed ones (sqlcheck.CheckWithModels).
func CheckQueryWithModels(query string, datasets, models []string) error {
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
	_, err = checkStatement(ctx, conn, query, datasets, models)
	return err
}

// checkStatement runs the statement check on a locked-down connection and
// returns the statement's parse tree.
func checkStatement(ctx context.Context, conn driver.Conn, query string, datasets, models []string) (*sqlcheck.Statement, error) {
	const rule = "the algorithm must be exactly one SELECT statement"
	if len(query) > maxQueryBytes {
		return nil, refuse(LayerStatement, nil, "the algorithm is %d bytes; at most %d are accepted", len(query), maxQueryBytes)
	}
	if !utf8.ValidString(query) {
		return nil, refuse(LayerStatement, nil, "the algorithm text is not valid UTF-8")
	}
	if strings.IndexByte(query, 0) >= 0 {
		return nil, refuse(LayerStatement, nil, "the algorithm text contains a NUL byte")
	}
	serialized, err := serialize(ctx, conn, "json_serialize_sql(CAST($1 AS VARCHAR))", query)
	if err != nil {
		return nil, err
	}
	stmts, err := sqlcheck.Parse(serialized)
	var serr *sqlcheck.SerializeError
	var refusal *sqlcheck.Refusal
	switch {
	case errors.As(err, &serr):
		if serr.Type == "parser" || !strings.Contains(serr.Message, "Only SELECT statements") {
			return nil, refuse(LayerStatement, nil, "DuckDB cannot parse the algorithm: %s", serr.Message)
		}
		// json_serialize_sql serialises SELECT statements only; any other
		// statement makes it fail as a whole.
		kinds := statementKinds(query)
		if len(kinds) == 0 || !slices.ContainsFunc(kinds, func(k string) bool { return !selectLike(k) }) {
			return nil, refuse(LayerStatement, nil, "%s; DuckDB's parser found a statement that is not a SELECT (%s)", rule, serr.Message)
		}
		return nil, refuse(LayerStatement, nil, "%s; found %s", rule, describeKinds(kinds))
	case errors.As(err, &refusal):
		return nil, refuse(LayerStatement, nil, "%v", refusal)
	case err != nil:
		return nil, fmt.Errorf("engine: reading DuckDB's parse of the algorithm: %w", err)
	}
	switch n := len(stmts); {
	case n == 0:
		return nil, refuse(LayerStatement, nil, "%s; found no statement", rule)
	case n > 1:
		kinds := statementKinds(query)
		if len(kinds) != n {
			kinds = slices.Repeat([]string{"SELECT"}, n)
		}
		return nil, refuse(LayerStatement, nil, "%s; found %s", rule, describeKinds(kinds))
	}
	if err := sqlcheck.CheckWithModels(stmts[0], datasets, models); err != nil {
		return nil, refuse(LayerStatement, nil, "%v", err)
	}
	return stmts[0], nil
}

// checkPlan is the statement check's look at the bound plan (see
// sqlcheck.CheckPlan): DuckDB binds query against the loaded datasets,
// without executing it, and every relation the plan reads must be a
// dataset's scan or an allowed row generator, every function it calls
// allowed. The query has passed checkStatement and prepareQuery.
func checkPlan(ctx context.Context, conn driver.Conn, query string) error {
	serialized, err := serialize(ctx, conn, "json_serialize_plan(CAST($1 AS VARCHAR), optimize := false)", query)
	if err != nil {
		return err
	}
	err = sqlcheck.CheckPlan(serialized, []string{scanFunction})
	var serr *sqlcheck.SerializeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &serr) && strings.Contains(query, "$"):
		// DuckDB plans some values before binding (a constant argument
		// of an aggregate, say): a parameter there cannot be checked.
		return refuse(LayerSandbox, nil, "DuckDB cannot plan the algorithm against the loaded datasets before its parameters are bound (%s); a parameter may stand only where DuckDB does not need its value to plan the query: write that value into the query", serr.Message)
	case errors.As(err, &serr):
		return refuse(LayerSandbox, nil, "DuckDB cannot plan the algorithm against the loaded datasets: %s", serr.Message)
	}
	return refuse(LayerStatement, nil, "%v", err)
}

// serialize runs one of DuckDB's JSON serialisers (call, over $1) on query
// and returns the JSON text. The serialisers parse or bind; they execute
// nothing.
func serialize(ctx context.Context, conn driver.Conn, call, query string) ([]byte, error) {
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, "SELECT CAST("+call+" AS VARCHAR)",
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
	return []byte(text), nil
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
// (DuckDB lower-cases unquoted names; the comparison ignores case), found
// by sqlcheck.ModelCalls on the typed tree of sqlcheck.Parse — and
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
	serialized, err := serialize(ctx, conn, "json_serialize_sql(CAST($1 AS VARCHAR))", query)
	if err != nil {
		return nil, err
	}
	stmts, err := sqlcheck.Parse(serialized)
	if err != nil {
		return nil, refuse(LayerStatement, nil, "DuckDB cannot parse the algorithm: %v", err)
	}
	var out []string
	for _, st := range stmts {
		out = append(out, sqlcheck.ModelCalls(st, models)...)
	}
	return out, nil
}
