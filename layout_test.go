package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The component packages take plain args; only the adapters (this program, the component
// provider) read stack config. A component that imported stackconfig would tie every program that
// uses it to this repository's config layout.
func TestComponentsDoNotImportStackconfig(t *testing.T) {
	const stackconfig = "github.com/regstack/registry-stack/stackconfig"
	for _, pkg := range []string{"registrystack", "routing", "placement", "storage", "tlscert", "redis", "registry", "gc", "ingress",
		"gateway", "monitoring", "auth", "clusterpull", "internal/kube", "internal/traefik", "internal/htpasswd", "internal/testutil"} {
		files, err := filepath.Glob(filepath.Join(pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", pkg, err)
		}
		for _, f := range files {
			// internal/testutil is imported by every package's tests, so its test files count too.
			if strings.HasSuffix(f, "_test.go") && pkg != "internal/testutil" {
				continue
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				if path, _ := strconv.Unquote(imp.Path.Value); path == stackconfig {
					t.Errorf("%s imports stackconfig", f)
				}
			}
		}
	}
}
