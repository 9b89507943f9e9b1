package machine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The pure core may not reach I/O, the clock or global randomness (design
// §2): this test reads the sources of effects, states and machine and the
// dependency list the go command computes.
var (
	forbiddenImports = []string{"net", "net/http", "os", "os/exec", "syscall", "io/ioutil", "crypto/rand", "math/rand", "math/rand/v2", "log", "log/slog", "unsafe"}
	forbiddenCalls   = []string{"Now", "Since", "Until", "After", "AfterFunc", "Sleep", "NewTimer", "NewTicker", "Tick"}
	corePackages     = []string{"../effects", "../states", "."}
)

func TestCoreImportsNoIO(t *testing.T) {
	for _, dir := range corePackages {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checkFile(t, f)
		}
	}
}

func checkFile(t *testing.T, path string) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	timeName := ""
	for _, imp := range file.Imports {
		p := strings.Trim(imp.Path.Value, `"`)
		for _, bad := range forbiddenImports {
			if p == bad {
				t.Errorf("%s imports %s", path, p)
			}
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	if timeName == "" {
		return
	}
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName {
			for _, bad := range forbiddenCalls {
				if sel.Sel.Name == bad {
					t.Errorf("%s: %s uses time.%s: the clock is Env.Now", fset.Position(sel.Pos()), path, bad)
				}
			}
		}
		return true
	})
}

// TestCoreDependsOnNoNetwork checks the transitive dependencies too: no
// package of the core may pull in the network stack.
func TestCoreDependsOnNoNetwork(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/mcpauth/mcpauth/machine").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "net", "net/http", "os/exec", "crypto/rand", "math/rand", "log", "log/slog":
			t.Errorf("machine depends on %s", dep)
		}
	}
}
