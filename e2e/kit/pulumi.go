//go:build e2e

package kit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/stackconfig"
)

// testPassphrase encrypts the throwaway stack's secrets. It is fixed on purpose: the state lives in
// a temp dir that is deleted at the end, and a fixed value lets a kept (E2E_KEEP=1) stack be inspected.
const testPassphrase = "regstack-e2e-passphrase"

// PulumiCLI runs the real `pulumi` CLI on the program in the repository root with a file backend in
// a temp dir and the stack config file kept beside it, so nothing is written into the repository.
type PulumiCLI struct {
	projectDir string // repository root (Pulumi.yaml)
	project    string // the project's name: the namespace of its config keys
	BackendDir string
	ConfigFile string
	Stack      string
	logDir     string
	seq        atomic.Int32 // numbers the log files in call order
}

// NewPulumiCLI runs the project in projectDir as stack, with its backend and config file in workDir
// and the logs of long commands in logDir.
func NewPulumiCLI(projectDir, workDir, logDir, stack string) (*PulumiCLI, error) {
	raw, err := os.ReadFile(filepath.Join(projectDir, "Pulumi.yaml"))
	if err != nil {
		return nil, fmt.Errorf("read the project: %w", err)
	}
	var project struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(raw, &project); err != nil || project.Name == "" {
		return nil, fmt.Errorf("%s/Pulumi.yaml: no project name (%v)", projectDir, err)
	}
	p := &PulumiCLI{
		projectDir: projectDir,
		project:    project.Name,
		BackendDir: filepath.Join(workDir, "state"),
		ConfigFile: filepath.Join(workDir, "Pulumi."+stack+".yaml"),
		Stack:      stack,
		logDir:     logDir,
	}
	if err := os.MkdirAll(p.BackendDir, 0o700); err != nil {
		return nil, fmt.Errorf("backend dir: %w", err)
	}
	return p, nil
}

// InProject is a CLI on the same stack (backend, config file, passphrase) running the program in
// dir: another release of the project, e.g. the previous one for an upgrade. Its logs go beside
// p's (give its commands labels of their own).
func (p *PulumiCLI) InProject(dir string) *PulumiCLI {
	return &PulumiCLI{projectDir: dir, project: p.project, BackendDir: p.BackendDir, ConfigFile: p.ConfigFile, Stack: p.Stack, logDir: p.logDir}
}

// env is added to the test process environment for every pulumi call.
func (p *PulumiCLI) env() []string {
	return []string{
		"PULUMI_BACKEND_URL=file://" + p.BackendDir,
		"PULUMI_CONFIG_PASSPHRASE=" + testPassphrase,
		"PULUMI_CONFIG_PASSPHRASE_FILE=", // a user's passphrase file must not win over the test passphrase
		"PULUMI_SKIP_UPDATE_CHECK=true",
		"NO_COLOR=1",
		// Exposes `--event-log` on up/preview/destroy: the engine events say exactly which
		// operation (same/update/replace/...) each resource got, without parsing display text.
		"PULUMI_DEBUG_COMMANDS=true",
	}
}

// args adds the flags every command needs. withConfig adds --config-file for the commands that
// read or write stack config.
func (p *PulumiCLI) args(withConfig bool, args ...string) []string {
	full := append([]string{}, args...)
	full = append(full, "--stack", p.Stack, "--non-interactive", "--color", "never")
	if withConfig {
		full = append(full, "--config-file", p.ConfigFile)
	}
	return full
}

// Run runs a short pulumi command and returns its stdout.
func (p *PulumiCLI) Run(ctx context.Context, timeout time.Duration, withConfig bool, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return RunCmd(ctx, p.projectDir, p.env(), "pulumi", p.args(withConfig, args...)...)
}

// RunLong runs a long pulumi command (preview/up/destroy) with its whole output in a log file.
func (p *PulumiCLI) RunLong(ctx context.Context, timeout time.Duration, label string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	logPath := filepath.Join(p.logDir, fmt.Sprintf("%02d-pulumi-%s.log", p.seq.Add(1), label))
	return runLogged(ctx, p.projectDir, p.env(), logPath, "pulumi", p.args(true, args...)...)
}

// InitStack creates the stack with the passphrase secrets provider. `pulumi stack init` has no
// --config-file flag and writes the passphrase salt into Pulumi.<stack>.yaml next to the project's
// Pulumi.yaml, so it runs in a scratch copy of the project (same project name, so the same stack in
// the backend) and the file it writes becomes the suite's config file. Nothing lands in the repository.
func (p *PulumiCLI) InitStack(ctx context.Context) error {
	scratch := filepath.Join(filepath.Dir(p.ConfigFile), "init-project")
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		return fmt.Errorf("scratch project dir: %w", err)
	}
	project, err := os.ReadFile(filepath.Join(p.projectDir, "Pulumi.yaml"))
	if err != nil {
		return fmt.Errorf("read Pulumi.yaml: %w", err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "Pulumi.yaml"), project, 0o600); err != nil {
		return fmt.Errorf("scratch Pulumi.yaml: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	args := []string{"stack", "init", p.Stack, "--secrets-provider", "passphrase", "--no-select", "--non-interactive", "--color", "never"}
	if _, err := RunCmd(ctx, scratch, p.env(), "pulumi", args...); err != nil {
		return fmt.Errorf("stack init: %w", err)
	}
	written := filepath.Join(scratch, "Pulumi."+p.Stack+".yaml")
	if _, err := os.Stat(written); err != nil {
		// Newer CLIs may keep the salt only in the state; then the config file starts empty.
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("stack config written by stack init: %w", err)
	}
	if err := os.Rename(written, p.ConfigFile); err != nil {
		return fmt.Errorf("move stack config to %s: %w", p.ConfigFile, err)
	}
	return nil
}

// Unset as a SetConfig value removes that config path (e.g. the variant a step switches away from:
// routing.ingress when it moves to routing.gateway).
const Unset = "\x00unset"

// SetConfig sets config values by path, as a user would: a top-level key with `pulumi config
// set-all --json` (a JSON list stored as a list, replacing it whole; a credential key as a secret),
// a path below one with `set-all --path`; Unset removes a path. Removals run first.
func (p *PulumiCLI) SetConfig(ctx context.Context, config map[string]string) error {
	type entry struct {
		Value       string    `json:"value"`
		ObjectValue *[]string `json:"objectValue,omitempty"` // set (possibly empty) for lists
		Secret      bool      `json:"secret"`
	}
	top := map[string]entry{}
	var paths, unset []string
	for _, k := range slices.Sorted(maps.Keys(config)) {
		v := config[k]
		switch {
		case v == Unset:
			unset = append(unset, p.project+":"+k)
		case strings.ContainsAny(k, ".["):
			// No credential is a path (they are top-level keys of their own).
			paths = append(paths, "--plaintext", p.project+":"+k+"="+v)
		default:
			// Credentials as a user must set them: `pulumi config set --secret`.
			e := entry{Value: v, Secret: stackconfig.IsSecretKey(k)}
			if strings.HasPrefix(strings.TrimSpace(v), "[") {
				list := []string{}
				if err := json.Unmarshal([]byte(v), &list); err != nil {
					return fmt.Errorf("config %s=%s: not a JSON list of strings: %w", k, v, err)
				}
				e.ObjectValue = &list
			}
			top[p.project+":"+k] = e
		}
	}
	for _, k := range unset {
		// One path at a time: a path that is not set is not an error.
		if _, err := p.Run(ctx, 2*time.Minute, true, "config", "rm", "--path", k); err != nil && !strings.Contains(err.Error(), "not found") {
			return fmt.Errorf("config rm --path %s: %w", k, err)
		}
	}
	if len(top) > 0 {
		raw, err := json.Marshal(top)
		if err != nil {
			return fmt.Errorf("config set-all: %w", err)
		}
		if _, err := p.Run(ctx, 2*time.Minute, true, "config", "set-all", "--json", string(raw)); err != nil {
			return fmt.Errorf("config set-all: %w", err)
		}
	}
	if len(paths) > 0 {
		if _, err := p.Run(ctx, 2*time.Minute, true, append([]string{"config", "set-all", "--path"}, paths...)...); err != nil {
			return fmt.Errorf("config set-all --path: %w", err)
		}
	}
	return nil
}

// MigrateConfig runs the README's migration of the flat config layout (cmd/migrate-config of the
// repository at root) on this stack, and returns what it printed.
func (p *PulumiCLI) MigrateConfig(ctx context.Context, root string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := RunCmd(ctx, root, p.env(), "go", "run", "./cmd/migrate-config",
		"--apply", "--stack", p.Stack, "--config-file", p.ConfigFile)
	if err != nil {
		return out, fmt.Errorf("migrate-config: %w", err)
	}
	return out, nil
}

// SetConfigPath sets one field of a structured key (`pulumi config set --path`, with --secret as a
// user sets a credential); path is e.g. mirrors[0].name. "true"/"false" are stored as booleans.
func (p *PulumiCLI) SetConfigPath(ctx context.Context, path, value string, secret bool) error {
	args := []string{"config", "set", "--path"}
	if secret {
		args = append(args, "--secret")
	}
	// The common flags first, then "--": a PEM value starts with dashes.
	args = append(p.args(true, args...), "--", p.project+":"+path, value)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := RunCmd(ctx, p.projectDir, p.env(), "pulumi", args...); err != nil {
		return fmt.Errorf("config set --path %s: %w", path, err)
	}
	return nil
}

// RemoveConfig removes a key from the stack config (the program's default applies again).
func (p *PulumiCLI) RemoveConfig(ctx context.Context, key string) error {
	if _, err := p.Run(ctx, 2*time.Minute, true, "config", "rm", p.project+":"+key); err != nil {
		return fmt.Errorf("config rm %s: %w", key, err)
	}
	return nil
}

// PreviewResult is the part of `pulumi preview --json` the suite checks.
type PreviewResult struct {
	Steps []struct {
		Op             string   `json:"op"`
		URN            string   `json:"urn"`
		DiffReasons    []string `json:"diffReasons"`
		ReplaceReasons []string `json:"replaceReasons"`
	} `json:"steps"`
	ChangeSummary map[string]int `json:"changeSummary"`
}

// PreviewJSON runs `pulumi preview --json` (plus extra flags such as --replace URN) and decodes
// the plan.
func (p *PulumiCLI) PreviewJSON(ctx context.Context, label string, extra ...string) (*PreviewResult, error) {
	out, err := p.RunLong(ctx, PreviewTimeout, label, append([]string{"preview", "--json"}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("pulumi preview --json: %w", err)
	}
	return DecodePreview(out)
}

// DecodePreview decodes what `pulumi preview --json` printed.
func DecodePreview(out string) (*PreviewResult, error) {
	var res PreviewResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return nil, fmt.Errorf("decode preview --json: %w\n%s", err, Tail(out, 20))
	}
	return &res, nil
}

// engineEvent is one line of `--event-log`; only resource steps are decoded.
type engineEvent struct {
	ResourcePreEvent *struct {
		Metadata struct {
			Op   string `json:"op"`
			URN  string `json:"urn"`
			Type string `json:"type"`
		} `json:"metadata"`
	} `json:"resourcePreEvent"`
}

// StepOp is one resource operation the engine performed or planned.
type StepOp struct {
	Op, URN string
}

// Up runs `pulumi up --yes --skip-preview` (plus extra flags such as --replace URN) with an engine
// event log and returns the resource operations of that update (read from the event log, so the
// test does not parse the text output).
func (p *PulumiCLI) Up(ctx context.Context, label string, extra ...string) ([]StepOp, error) {
	eventLog := filepath.Join(p.logDir, fmt.Sprintf("events-%s.jsonl", label))
	args := append([]string{"up", "--yes", "--skip-preview", "--event-log", eventLog}, extra...)
	if _, err := p.RunLong(ctx, upTimeout, label, args...); err != nil {
		return nil, fmt.Errorf("pulumi up: %w", err)
	}
	return readEventLog(eventLog)
}

func readEventLog(path string) ([]StepOp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	defer f.Close()
	var ops []StepOp
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20) // events carry whole resource states
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev engineEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("decode event log line: %w", err)
		}
		if ev.ResourcePreEvent != nil {
			ops = append(ops, StepOp{Op: ev.ResourcePreEvent.Metadata.Op, URN: ev.ResourcePreEvent.Metadata.URN})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read event log: %w", err)
	}
	return ops, nil
}

// Outputs returns the stack outputs with secrets revealed.
func (p *PulumiCLI) Outputs(ctx context.Context, showSecrets bool) (map[string]any, error) {
	args := []string{"stack", "output", "--json"}
	if showSecrets {
		args = append(args, "--show-secrets")
	}
	out, err := p.Run(ctx, 2*time.Minute, false, args...)
	if err != nil {
		return nil, fmt.Errorf("stack output: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("decode stack output: %w", err)
	}
	return m, nil
}

// StateResource is one resource of `pulumi stack export`.
type StateResource struct {
	URN     string         `json:"urn"`
	Type    string         `json:"type"`
	ID      string         `json:"id"`
	Outputs map[string]any `json:"outputs"`
}

// ExportResources returns the resources in the stack's state (secrets decrypted, kept in memory only).
func (p *PulumiCLI) ExportResources(ctx context.Context) ([]StateResource, error) {
	out, err := p.Run(ctx, 2*time.Minute, false, "stack", "export", "--show-secrets")
	if err != nil {
		return nil, fmt.Errorf("stack export: %w", err)
	}
	var dep struct {
		Deployment struct {
			Resources []StateResource `json:"resources"`
		} `json:"deployment"`
	}
	if err := json.Unmarshal([]byte(out), &dep); err != nil {
		return nil, fmt.Errorf("decode stack export: %w", err)
	}
	return dep.Deployment.Resources, nil
}

// StateFiles returns the contents of every file of the file backend (state, history, backups),
// gunzipped when needed, keyed by path. The main state file must be among them.
func (p *PulumiCLI) StateFiles(project string) (map[string][]byte, string, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(p.BackendDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("gunzip %s: %w", path, err)
			}
			data, err = io.ReadAll(zr)
			if err != nil {
				return fmt.Errorf("gunzip %s: %w", path, err)
			}
		}
		files[path] = data
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("walk backend dir: %w", err)
	}
	base := filepath.Join(p.BackendDir, ".pulumi", "stacks", project, p.Stack+".json")
	for _, candidate := range []string{base, base + ".gz"} {
		if _, ok := files[candidate]; ok {
			return files, candidate, nil
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, "", fmt.Errorf("state file %s(.gz) not found; backend holds %v", base, names)
}

// InPlaceOps are the non-destructive operations: anything but these means a resource lost its identity.
var InPlaceOps = map[string]bool{"same": true, "update": true, "refresh": true, "read": true}

// ShortURN keeps type and name of a URN (urn:pulumi:stack::project::type::name).
func ShortURN(urn string) string {
	parts := strings.Split(urn, "::")
	if len(parts) < 2 {
		return urn
	}
	typ := parts[len(parts)-2]
	if i := strings.LastIndex(typ, "$"); i >= 0 {
		typ = typ[i+1:]
	}
	return typ + "::" + parts[len(parts)-1]
}

// SummarizeOps counts operations and names the non-"same" ones.
func SummarizeOps(ops []StepOp) string {
	counts := map[string]int{}
	var changed []string
	for _, o := range ops {
		counts[o.Op]++
		if o.Op != "same" {
			changed = append(changed, o.Op+" "+ShortURN(o.URN))
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	s := strings.Join(parts, " ")
	if len(changed) > 0 && len(changed) <= 12 {
		s += " [" + strings.Join(changed, ", ") + "]"
	}
	return s
}
