package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/stackconfig"
)

// readmeSection returns the README's text from the heading to the next heading of its level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i := strings.Index(s, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	s = s[i+len(heading)+2:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

var backticked = regexp.MustCompile("`([^`]*)`")

// TestReadmeConfigTableIsTheDefaultsTable: every config key has one row in the README's
// configuration table, and the default it shows is the one table's (stackconfig) default.
func TestReadmeConfigTableIsTheDefaultsTable(t *testing.T) {
	defaults := stackconfig.Defaults()
	seen := map[string]bool{}
	for _, line := range strings.Split(readmeSection(t, "## Configuration"), "\n") {
		cells := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| `") || len(cells) < 3 {
			continue
		}
		keyCell, defCell := strings.TrimPrefix(cells[0], "| "), cells[1]
		keys := strings.Split(keyCell, " / ")
		defs := strings.Split(defCell, " / ")
		if len(defs) != len(keys) {
			defs = []string{defCell}
		}
		for i, k := range keys {
			k = strings.Trim(k, "`")
			want, ok := defaults[k]
			if !ok {
				t.Errorf("README row %q: %s is no config key", keyCell, k)
				continue
			}
			if seen[k] {
				t.Errorf("README: %s has two rows", k)
			}
			seen[k] = true
			def := defs[min(i, len(defs)-1)]
			got := ""
			switch m := backticked.FindStringSubmatch(def); {
			case strings.HasPrefix(def, "unset"), def == "stack namespace":
				// Unset object keys, and the namespace that an empty routing.gateway.existing.namespace means.
			case m != nil:
				got = m[1]
			default:
				t.Errorf("README row %q: default %q names no value", keyCell, def)
				continue
			}
			if got == `""` {
				got = ""
			}
			if got != want {
				t.Errorf("README: %s defaults to %q, the defaults table says %q", k, got, want)
			}
		}
	}
	for k := range defaults {
		if !seen[k] {
			t.Errorf("README's configuration table has no row for %s", k)
		}
	}
}

// TestReadmeNamesEveryOutput: the README's list of outputs names each output the component has.
func TestReadmeNamesEveryOutput(t *testing.T) {
	section := readmeSection(t, "## Configuration")
	i := strings.Index(section, "Stack outputs:")
	if i < 0 {
		t.Fatal("README's configuration section has no \"Stack outputs:\" paragraph")
	}
	for name := range registrystack.OutputDescriptions {
		if !strings.Contains(section[i:], "`"+name+"`") {
			t.Errorf("README's stack outputs do not name %s", name)
		}
	}
}
