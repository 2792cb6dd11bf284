// Command migrate-config rewrites a stack's config from the flat layout (before 2026-12: s3Bucket,
// gcSchedule, ...) into the structured one (storage.s3.bucket, gc.schedule, ...) with the Pulumi CLI,
// so that `pulumi up` of this release finds the config it reads. Secrets stay secrets: each one is
// read with the CLI and written back with --secret, on stdin (never on a command line).
//
//	go run ./cmd/migrate-config [--stack NAME]          # print the plan (make migrate-config)
//	go run ./cmd/migrate-config [--stack NAME] --apply  # carry it out (make migrate-config APPLY=1)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/stackconfig"
)

func main() {
	stack := flag.String("stack", "", "the stack to migrate (default: the selected one)")
	configFile := flag.String("config-file", "", "the stack's config file, when it is not Pulumi.<stack>.yaml")
	apply := flag.Bool("apply", false, "carry the plan out (default: print it)")
	flag.Parse()
	if err := run(context.Background(), *stack, *configFile, *apply); err != nil {
		fmt.Fprintln(os.Stderr, "migrate-config:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stack, configFile string, apply bool) error {
	project, err := projectName("Pulumi.yaml")
	if err != nil {
		return err
	}
	var stackArgs []string
	if stack != "" {
		stackArgs = []string{"--stack", stack}
	}
	if configFile != "" {
		stackArgs = append(stackArgs, "--config-file", configFile)
	}
	out, err := pulumi(ctx, nil, append([]string{"config", "--json", "--show-secrets"}, stackArgs...)...)
	if err != nil {
		return err
	}
	var raw map[string]struct {
		Value  string `json:"value"`
		Secret bool   `json:"secret"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return fmt.Errorf("read `pulumi config --json`: %w", err)
	}
	old := map[string]stackconfig.OldValue{}
	for k, v := range raw {
		if name, ok := strings.CutPrefix(k, project+":"); ok {
			old[name] = stackconfig.OldValue{Value: v.Value, Secret: v.Secret}
		}
	}
	m, err := stackconfig.Migrate(old)
	if err != nil {
		return err
	}
	if len(m.RemoveFirst)+len(m.Set)+len(m.Remove) == 0 {
		fmt.Println("nothing to migrate: the stack config has no key of the flat layout")
		return nil
	}
	if len(m.RemoveFirst) > 0 {
		fmt.Printf("remove %s (first: the new layout uses the name for a structured key)\n", strings.Join(m.RemoveFirst, " "))
	}
	for _, s := range m.Set {
		shown, flags := fmt.Sprintf("%q", s.Value), "--path"
		if s.Secret {
			shown, flags = "[secret]", "--path --secret"
		}
		fmt.Printf("set    %s %s %s\n", flags, s.Path, shown)
	}
	for _, d := range m.Dropped {
		fmt.Printf("drop   %s\n", d)
	}
	fmt.Printf("remove %s\n", strings.Join(m.Remove, " "))
	if !apply {
		fmt.Println("(a plan: run again with --apply to carry it out)")
		return nil
	}
	if err := removeAll(ctx, project, m.RemoveFirst, stackArgs); err != nil {
		return err
	}
	for _, s := range m.Set {
		// As a string: the CLI would store "1001" or "+1" as a number otherwise; the program takes
		// booleans and numbers in their text form.
		args := []string{"config", "set", "--path", "--type", "string"}
		if s.Secret {
			args = append(args, "--secret")
		}
		// The value on stdin: a secret never shows in a process list, a PEM's dashes are no flag.
		if _, err := pulumi(ctx, strings.NewReader(s.Value), append(append(args, stackArgs...), "--", project+":"+s.Path)...); err != nil {
			return err
		}
	}
	if err := removeAll(ctx, project, m.Remove, stackArgs); err != nil {
		return err
	}
	fmt.Printf("migrated: %d paths set, %d keys removed; run `pulumi preview` next\n", len(m.Set), len(m.RemoveFirst)+len(m.Remove))
	return nil
}

// removeAll removes config keys of the project (none: nothing to run).
func removeAll(ctx context.Context, project string, keys, stackArgs []string) error {
	if len(keys) == 0 {
		return nil
	}
	rm := []string{"config", "rm-all"}
	for _, k := range keys {
		rm = append(rm, project+":"+k)
	}
	_, err := pulumi(ctx, nil, append(rm, stackArgs...)...)
	return err
}

// pulumi runs the CLI in the project directory and returns its stdout.
func pulumi(ctx context.Context, stdin *strings.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "pulumi", args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// args never hold a secret value (those go on stdin).
		return nil, fmt.Errorf("pulumi %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// projectName reads the project's name, the prefix of its config keys.
func projectName(file string) (string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("run it in the project's directory: %w", err)
	}
	var p struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(raw, &p); err != nil || p.Name == "" {
		return "", fmt.Errorf("%s has no project name: %v", file, err)
	}
	return p.Name, nil
}
