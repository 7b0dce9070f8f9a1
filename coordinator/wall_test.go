package coordinator_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "cleanroom.dev/cleanroom"

// goList runs `go list` at the module's root with args and returns its
// output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the packages: %v", err)
	}
	cmd := exec.Command(gobin, append([]string{"list"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// TestSDKDoesNotImportServer: nothing the client side builds on (the SDK
// under cleanroom/, contracts, connectors) depends, even indirectly, on
// anything under coordinator/; the server's parts are under
// coordinator/internal/, where the compiler keeps everyone else out.
func TestSDKDoesNotImportServer(t *testing.T) {
	deps := goList(t, "-deps", "-f", "{{.ImportPath}}", "./cleanroom/...", "./contracts/...", "./connectors/...")
	if len(deps) < 10 {
		t.Fatalf("go list found only %d packages", len(deps))
	}
	for _, p := range deps {
		if p == module+"/coordinator" || strings.HasPrefix(p, module+"/coordinator/") {
			t.Errorf("the client side depends on %s", p)
		}
	}
	pkgs := goList(t, "./coordinator/...")
	for _, part := range []string{"engine", "tee", "eventlog", "state", "blobs", "arrowipc"} {
		if !slices.Contains(pkgs, module+"/coordinator/internal/"+part) {
			t.Errorf("no package coordinator/internal/%s", part)
		}
	}
	for _, p := range pkgs {
		if p != module+"/coordinator" && !strings.HasPrefix(p, module+"/coordinator/internal/") {
			t.Errorf("%s is a public package of the server: its internals belong under coordinator/internal", p)
		}
	}
}

// TestOneDaemonWiring: the attested TLS server, its listener and its
// connection limits are set up in one place, coordinator.Serve, which
// cleanroomd and the test environment both call: no other production code
// makes an attested HTTPS server, serves TLS or builds connection limits.
func TestOneDaemonWiring(t *testing.T) {
	wiring := map[string][]string{} // package directory → what it calls
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var name string
			switch n := n.(type) {
			case *ast.SelectorExpr:
				x, _ := n.X.(*ast.Ident)
				switch {
				case n.Sel.Name == "ServeTLS" || n.Sel.Name == "ListenAndServeTLS":
					name = n.Sel.Name
				case x != nil && x.Name == "atls" && n.Sel.Name == "NewHTTPServer",
					x != nil && x.Name == "coordinator" && (n.Sel.Name == "Serve" || n.Sel.Name == "ServerLimits"):
					name = x.Name + "." + n.Sel.Name
				}
			case *ast.Ident:
				if n.Name == "limitListenerPerHost" {
					name = n.Name
				}
			}
			if name != "" {
				dir := filepath.ToSlash(filepath.Dir(path))
				wiring[dir] = append(wiring[dir], name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, calls := range wiring {
		switch dir {
		case "../coordinator": // Serve and the limits
		case "../cmd/cleanroomd", "../internal/testenv":
			for _, c := range calls {
				if c != "coordinator.Serve" && c != "coordinator.ServerLimits" {
					t.Errorf("%s sets up a server itself: %s", dir, c)
				}
			}
		default:
			t.Errorf("%s sets up a server: %v", dir, calls)
		}
	}
	for _, dir := range []string{"../cmd/cleanroomd", "../internal/testenv"} {
		if !slices.Contains(wiring[dir], "coordinator.Serve") {
			t.Errorf("%s does not serve the coordinator through coordinator.Serve", dir)
		}
	}
}
