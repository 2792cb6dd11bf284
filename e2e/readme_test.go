//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// readmeConfigCommand is one `pulumi config set` line of a shell example in the README.
type readmeConfigCommand struct {
	Line    int    // 1-based line in README.md
	Command string // as written, without its trailing comment
}

// readmeCommentRE is a shell comment after a command (the README aligns them after two spaces).
var readmeCommentRE = regexp.MustCompile(`\s+#\s.*$`)

// readmeConfigCommands returns the `pulumi config set` lines of the README's fenced shell blocks.
func readmeConfigCommands(readme string) []readmeConfigCommand {
	var cmds []readmeConfigCommand
	inBlock := false
	for i, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock && strings.HasPrefix(line, "pulumi config set ") {
			cmds = append(cmds, readmeConfigCommand{Line: i + 1, Command: readmeCommentRE.ReplaceAllString(line, "")})
		}
	}
	return cmds
}

// readmeInputFileRE finds the files a command reads: `< file` or `$(cat file)`.
var readmeInputFileRE = regexp.MustCompile(`(?:<\s*|\$\(cat\s+)([\w./-]+)`)

// readmeConfigKey is the key a `pulumi config set` command sets and whether it is a --path key.
func readmeConfigKey(command string) (key string, path bool) {
	for _, f := range strings.Fields(strings.TrimPrefix(command, "pulumi config set ")) {
		switch {
		case f == "--path":
			path = true
		case strings.HasPrefix(f, "--"):
		default:
			return strings.Trim(f, `'"`), path
		}
	}
	return "", path
}

// stepReadmeConfigCommands runs every `pulumi config set` line of the README's shell examples as
// written, through bash and the real CLI, in a throwaway project directory (the repository's
// Pulumi.yaml, a file backend, a stack of its own): each must succeed, and a key set from a file
// (a PEM: it starts with dashes, which the CLI takes for a flag when it is an argument) must hold
// the file's content. A README example that fails for a user fails here.
func (f *fixture) stepReadmeConfigCommands(t *testing.T) {
	ctx := context.Background()
	readme, err := os.ReadFile(filepath.Join(f.RepoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := readmeConfigCommands(string(readme))
	// The S3, mirror and monitoring examples alone hold more: fewer means the extraction broke.
	if len(cmds) < 15 {
		t.Fatalf("found %d `pulumi config set` lines in the README's shell blocks, want at least 15: %+v", len(cmds), cmds)
	}
	dir := t.TempDir()
	project, err := os.ReadFile(filepath.Join(f.RepoRoot, "Pulumi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), project, 0o644); err != nil {
		t.Fatal(err)
	}
	caPEM, _, _, err := makeCA("readme.example.test")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, c := range cmds {
		for _, m := range readmeInputFileRE.FindAllStringSubmatch(c.Command, -1) {
			if !files[m[1]] {
				files[m[1]] = true
				if err := os.WriteFile(filepath.Join(dir, m[1]), caPEM, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if len(files) == 0 {
		t.Fatalf("no README example sets a key from a file (a PEM): the check of that case would be empty")
	}
	env := []string{
		"PULUMI_BACKEND_URL=file://" + filepath.Join(dir, "state"),
		"PULUMI_CONFIG_PASSPHRASE=readme-example",
		"PULUMI_CONFIG_PASSPHRASE_FILE=",
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"HUB_TOKEN=example-hub-token",         // the mirror example's secret
		"S3_SECRET_ACCESS_KEY=example-s3-key", // the configuration example's secret
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := kit.RunCmd(ctx, dir, env, "pulumi", "stack", "init", "readme", "--non-interactive"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fromFile := 0
	for _, c := range cmds {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		out, err := kit.RunCmd(cctx, dir, env, "bash", "-euo", "pipefail", "-c", c.Command)
		cancel()
		if err != nil {
			t.Errorf("README.md:%d `%s` fails: %v%s", c.Line, c.Command, err, out)
			continue
		}
		m := readmeInputFileRE.FindStringSubmatch(c.Command)
		if m == nil {
			continue
		}
		fromFile++
		key, path := readmeConfigKey(c.Command)
		args := []string{"config", "get", key}
		if path {
			args = append(args, "--path")
		}
		got, err := kit.RunCmd(ctx, dir, env, "pulumi", args...)
		if err != nil {
			t.Errorf("README.md:%d: pulumi config get %s: %v", c.Line, key, err)
			continue
		}
		if strings.TrimSpace(got) != strings.TrimSpace(string(caPEM)) {
			t.Errorf("README.md:%d `%s`: %s holds %q, not the content of %s", c.Line, c.Command, key, kit.Tail(got, 3), m[1])
		}
	}
	f.Report.Fact("README: %d `pulumi config set` lines of its shell examples ran as written through the real CLI in %s; %d set a PEM from a file and hold it",
		len(cmds), time.Since(start).Round(100*time.Millisecond), fromFile)
}
