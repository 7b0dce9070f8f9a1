package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The rule of cmd/cleanroom: flags, one call of the SDK, output. It holds
// no cryptography and no protocol: what it may import, and which functions
// of the SDK's building blocks it may call, are listed here; everything
// else (encrypting, signing, sealing, verifying a bundle or a log, parsing
// evidence, choosing a policy) is done by cleanroom/client and the SDK
// calls below.
var (
	// allowedModule are the module's packages the CLI may import.
	allowedModule = []string{
		"cleanroom", "cleanroom/client", "cleanroom/api", "cleanroom/attest", "cleanroom/audit",
		"cleanroom/bundle", "cleanroom/envelope", "cleanroom/tlog", "contracts", "connectors",
		"internal/cliout", "internal/durable",
	}
	// allowedOther are the other packages it may import.
	allowedOther = []string{"github.com/spf13/cobra", "github.com/spf13/viper", "golang.org/x/term"}
	// refusedStd are the standard library's cryptography and encodings of
	// keys, which the CLI must leave to the SDK.
	refusedStd = []string{"crypto", "hash", "encoding/pem", "encoding/asn1", "math/big"}
	// calls are the functions the CLI may call in the SDK packages that
	// hold building blocks as well as operations; only types, constants
	// and these functions may be used from them. The packages not listed
	// (client, api, contracts, connectors, cliout, durable) are called
	// freely: they are the operations.
	calls = map[string][]string{
		"cleanroom": {"ReadIdentityFile", "WriteIdentityFiles", "GenerateIdentity", "ReadSaltFile", "CommitAlgorithmFile", "ModelDigest"},
		"attest":    {"Appraise", "LoadEvidence", "IsEncoded", "ParseIdentityDocument", "LoadTDXCollateral", "DescribeSNPPolicy"},
		"audit":     {"DefaultStateDir", "OpenState", "Handler", "ReadFacts", "ReadLastFailure", "ListEvidence"},
		"envelope":  {"Inspect"},
		"bundle":    {},
		"tlog":      {},
	}
)

// TestCLIHoldsNoProtocol checks every non-test file of the CLI against the
// rule above.
func TestCLIHoldsNoProtocol(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, problem := range cliProblems(f) {
			t.Errorf("%s: %s", name, problem)
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files", checked)
	}
}

// cliProblems lists how a file breaks the rule.
func cliProblems(f *ast.File) []string {
	var problems []string
	restricted := map[string]string{} // local name → package of calls
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		local := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			local = imp.Name.Name
		}
		switch {
		case strings.HasPrefix(path, "cleanroom.dev/cleanroom/"):
			rel := strings.TrimPrefix(path, "cleanroom.dev/cleanroom/")
			if !slices.Contains(allowedModule, rel) {
				problems = append(problems, "imports "+path+": the CLI calls the SDK's operations, not its parts or the server")
				continue
			}
			if _, ok := calls[local]; ok {
				restricted[local] = local
			}
		case strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
			if !slices.Contains(allowedOther, path) {
				problems = append(problems, "imports "+path)
			}
		default:
			for _, r := range refusedStd {
				if path == r || strings.HasPrefix(path, r+"/") {
					problems = append(problems, "imports "+path+": cryptography belongs to the SDK")
				}
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		x, ok := sel.X.(*ast.Ident)
		if !ok || x.Obj != nil { // a local variable, not a package
			return true
		}
		if pkg, ok := restricted[x.Name]; ok && !slices.Contains(calls[pkg], sel.Sel.Name) && !isConversion(sel.Sel.Name) {
			problems = append(problems, "calls "+x.Name+"."+sel.Sel.Name+": a building block of the SDK, not an operation")
		}
		return true
	})
	return problems
}

// isConversion reports the SDK's types that the CLI converts flag values
// to.
func isConversion(name string) bool { return name == "Platform" }

// TestCLIRuleCatches checks that the rule refuses what it is for: the
// cryptography, the building blocks and the server.
func TestCLIRuleCatches(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"crypto", `package main; import "crypto/sha256"; var _ = sha256.Sum256`, "imports crypto/sha256"},
		{"pem", `package main; import "encoding/pem"; var _ = pem.Decode`, "imports encoding/pem"},
		{"envelope opened by hand", `package main; import "cleanroom.dev/cleanroom/cleanroom/envelope"; func f() { envelope.OpenFile(nil, 0, nil, envelope.Expect{}, envelope.OpenOptions{}) }`, "calls envelope.OpenFile"},
		{"bundle verified by hand", `package main; import "cleanroom.dev/cleanroom/cleanroom/bundle"; func f() { bundle.Verify(nil, nil, bundle.VerifyOptions{}) }`, "calls bundle.Verify"},
		{"upload statements", `package main; import "cleanroom.dev/cleanroom/cleanroom/upload"`, "imports cleanroom.dev/cleanroom/cleanroom/upload"},
		{"the server", `package main; import "cleanroom.dev/cleanroom/coordinator"`, "imports cleanroom.dev/cleanroom/coordinator"},
		{"a verifier built by hand", `package main; import "cleanroom.dev/cleanroom/cleanroom/attest"; func f() { attest.NewVerifier(attest.VerifierOptions{}) }`, "calls attest.NewVerifier"},
		{"a log checked by hand", `package main; import "cleanroom.dev/cleanroom/cleanroom/audit"; func f() { audit.Run(nil, audit.Config{}, nil) }`, "calls audit.Run"},
	} {
		f, err := parser.ParseFile(token.NewFileSet(), tc.name+".go", tc.src, 0)
		if err != nil {
			t.Fatal(err)
		}
		problems := cliProblems(f)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, tc.want) }) {
			t.Errorf("%s: problems %q, want one starting %q", tc.name, problems, tc.want)
		}
	}
}
