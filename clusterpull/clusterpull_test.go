package clusterpull

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestDockerConfigJSONIsWhatKubeletReads(t *testing.T) {
	raw, err := DockerConfigJSON("registry.example.com", "nodes", "p@ss:w0rd")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
	}
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	a := cfg.Auths["registry.example.com"]
	dec, _ := base64.StdEncoding.DecodeString(a.Auth)
	if a.Username != "nodes" || a.Password != "p@ss:w0rd" || string(dec) != "nodes:p@ss:w0rd" || len(cfg.Auths) != 1 {
		t.Errorf("dockerconfigjson = %s", raw)
	}
}

func TestAgentFilesTrustTheCAByItsPathOnTheNode(t *testing.T) {
	files := AgentFiles("registry.example.com", "/etc/containerd/certs.d", "CA PEM", map[string]string{"docker.io": "mirror hosts"})
	want := map[string]string{
		"registry.example.com/hosts.toml":            "",
		"registry.example.com/registry-stack-ca.crt": "CA PEM",
		"docker.io/hosts.toml":                       "mirror hosts",
		"docker.io/registry-stack-ca.crt":            "CA PEM",
	}
	if len(files) != len(want) {
		t.Fatalf("files %v", files)
	}
	for k, v := range want {
		if v != "" && files[k] != v {
			t.Errorf("%s = %q, want %q", k, files[k], v)
		}
	}
	hosts := files["registry.example.com/hosts.toml"]
	for _, line := range []string{`server = "https://registry.example.com"`, `[host."https://registry.example.com"]`,
		`capabilities = ["pull", "resolve"]`, `ca = "/etc/containerd/certs.d/registry.example.com/registry-stack-ca.crt"`} {
		if !strings.Contains(hosts, line) {
			t.Errorf("hosts.toml lacks %s:\n%s", line, hosts)
		}
	}
	if files := AgentFiles("registry.example.com", "/x", "", nil); len(files) != 1 || strings.Contains(files["registry.example.com/hosts.toml"], "ca =") {
		t.Errorf("a publicly trusted certificate installs a CA: %v", files)
	}
}

// The agent's script, run with sh against temporary directories: it installs every file of the
// index, and on SIGTERM removes those still as it wrote them (one another pod rewrote stays).
func TestAgentScriptInstallsAndRemovesItsFiles(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	files, root := filepath.Join(dir, "files"), filepath.Join(dir, "host")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	data := agentSecretData(map[string]string{"reg.example.com/hosts.toml": "H", "reg.example.com/ca.crt": "C", "docker.io:5000/hosts.toml": "M",
		"ghcr.io/hosts.toml": "# (registry-stack)\nours"})
	// The admin's own hosts.toml for ghcr.io (no registry-stack marker) is never overwritten.
	if err := os.MkdirAll(filepath.Join(root, "ghcr.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ghcr.io/hosts.toml"), []byte("the admin's"), 0o644); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(files, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := strings.NewReplacer("/host-certs", root, "/files", files).Replace(agentScript)
	cmd := exec.Command("sh", "-c", script)
	// A file, not a pipe: the script's sleep outlives it (in a pod it dies with the container),
	// and Wait would wait for a pipe's last writer. Its own process group goes at the end.
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }()
	out := logReader(log.Name())
	deadline := time.Now().Add(10 * time.Second)
	for !exists(filepath.Join(root, "docker.io:5000/hosts.toml")) || !exists(filepath.Join(root, "reg.example.com/ca.crt")) {
		if time.Now().After(deadline) {
			t.Fatalf("not installed: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "reg.example.com/hosts.toml")); string(b) != "H" {
		t.Errorf("installed hosts.toml = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "ghcr.io/hosts.toml")); string(b) != "the admin's" || !strings.Contains(out.String(), "ghcr.io/hosts.toml exists and is not registry-stack's") {
		t.Errorf("the admin's hosts.toml = %q\n%s", b, out)
	}
	// Another pod of the agent rewrote the CA: it stays.
	if err := os.WriteFile(filepath.Join(root, "reg.example.com/ca.crt"), []byte("newer"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the trap is set once the installs are done
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent exited with %v: %s", err, out)
	}
	for p, want := range map[string]bool{"reg.example.com/hosts.toml": false, "docker.io:5000/hosts.toml": false, "docker.io:5000": false, "reg.example.com/ca.crt": true,
		"ghcr.io/hosts.toml": true} {
		if got := exists(filepath.Join(root, p)); got != want {
			t.Errorf("after SIGTERM %s exists = %v, want %v\n%s", p, got, want, out)
		}
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// logReader prints a file's content when formatted (%s).
type logReader string

func (l logReader) String() string { b, _ := os.ReadFile(string(l)); return string(b) }

func TestValidateNamesWhatIsMissing(t *testing.T) {
	for _, c := range []struct {
		args ClusterPullArgs
		want string
	}{
		{ClusterPullArgs{}, "Hostname is required"},
		{ClusterPullArgs{Hostname: "h", Username: "u"}, "Username, Password and Namespaces go together"},
		{ClusterPullArgs{Hostname: "h", Agent: &Agent{ConfigPath: "relative", Namespace: "n", Image: "i"}}, "absolute ConfigPath"},
	} {
		if err := c.args.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.args, err, c.want)
		}
	}
}
