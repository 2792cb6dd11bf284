//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// stepClusterPull proves the cluster pulls from its own registry without hand work on the node:
// with the pull-only account's Secret in a listed namespace and the node agent on, a pod whose
// image names the registry host runs; turning the agent off removes what it installed.
//
// What the sandbox lacks, done here for the test only: the registry's hostname does not resolve
// on the node and its ingress listens on 127.0.0.1:8443, not 443 (a real cluster has DNS and a
// load balancer). The step adds an /etc/hosts line for the hostname and forwards 127.0.0.1:443 to
// the ingress address for its duration, then removes both.
func (f *fixture) stepClusterPull(t *testing.T) {
	need(t, f.token != nil, "token auth")
	ctx := context.Background()
	apps := f.Settings.Namespace + "-apps"
	host := f.Settings.Hostname
	certs := f.Settings.ContainerdConfigPath

	undo, err := f.nodeReachesRegistry(t)
	if err != nil {
		t.Skipf("SKIPPED: the node cannot be pointed at the registry here: %v", err)
	}
	defer undo()

	im, err := kit.RunnableImage(ctx, f.repo("apps/hello"), "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.clientAs("admin").PushImage(ctx, im); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kube.Run(ctx, false, "create", "namespace", apps); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := f.Kube.Run(context.Background(), false, "delete", "namespace", apps, "--wait=false"); err != nil {
			t.Logf("delete namespace %s: %v", apps, err)
		}
	}()

	setPull := func(label string, agent bool) {
		t.Helper()
		cfg := map[string]any{"account": "cluster-a", "namespaces": []string{apps}}
		if agent {
			cfg["nodeAgent"] = map[string]string{"configPath": certs, "image": f.Settings.NodeAgentImage}
		}
		raw, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Pulumi.SetConfig(ctx, map[string]string{"clusterPull": string(raw)}); err != nil {
			t.Fatal(err)
		}
		ops, err := f.TimedUp(ctx, "pulumi up (clusterPull: "+label+")", "up-cluster-pull-"+label)
		if err != nil {
			t.Fatalf("pulumi up (%s): %v\nevents:\n%s", label, err, f.Kube.Events(ctx))
		}
		t.Logf("up %s: %s", label, kit.SummarizeOps(ops))
	}
	installed := []string{filepath.Join(certs, host, "hosts.toml"), filepath.Join(certs, host, "registry-stack-ca.crt")}
	for _, p := range installed {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is there before the agent runs (%v): the check would prove nothing", p, err)
		}
	}
	setPull("agent-on", true)

	if err := kit.Poll(ctx, 2*time.Minute, time.Second, func() (bool, error) {
		for _, p := range installed {
			if _, err := os.Stat(p); err != nil {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("the node agent did not install %v: %v", installed, err)
	}
	hostsTOML, _ := os.ReadFile(installed[0])

	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "hello", "namespace": apps},
		"spec": map[string]any{
			"restartPolicy":    "Never",
			"imagePullSecrets": []map[string]string{{"name": "registry-pull"}},
			"securityContext":  map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": map[string]string{"type": "RuntimeDefault"}},
			"containers": []map[string]any{{
				"name": "hello", "image": host + "/" + im.Repo + ":" + im.Tag, "imagePullPolicy": "Always",
				"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": map[string]any{"drop": []string{"ALL"}}},
			}},
		},
	}
	manifest, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(file, manifest, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kube.Run(ctx, false, "apply", "-f", file); err != nil {
		t.Fatal(err)
	}
	var phase, logs string
	err = kit.Poll(ctx, 2*time.Minute, time.Second, func() (bool, error) {
		out, err := f.Kube.Run(ctx, false, "-n", apps, "get", "pod", "hello", "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.waiting.reason}")
		if err != nil {
			return false, nil
		}
		phase = strings.TrimSpace(out)
		return strings.HasPrefix(phase, "Succeeded") || strings.HasPrefix(phase, "Failed"), nil
	})
	if err != nil || !strings.HasPrefix(phase, "Succeeded") {
		events, _ := f.Kube.Run(ctx, false, "-n", apps, "get", "events", "--sort-by=.lastTimestamp")
		t.Fatalf("pod %s/hello (image %s/%s) did not run: phase %q %v\nhosts.toml:\n%s\nevents:\n%s", apps, host, im.Ref(), phase, err, hostsTOML, events)
	}
	logs, err = f.Kube.Run(ctx, false, "-n", apps, "logs", "hello")
	if err != nil || !strings.Contains(logs, kit.Greeting) {
		t.Errorf("pod logs %q (%v), want %q", logs, err, kit.Greeting)
	}

	// The agent off: what it installed goes, its namespace too; the pull Secret stays.
	setPull("agent-off", false)
	if err := kit.Poll(ctx, 2*time.Minute, time.Second, func() (bool, error) {
		for _, p := range installed {
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Errorf("turning the node agent off left %v: %v", installed, err)
	}
	if _, err := f.Kube.Run(ctx, false, "-n", apps, "get", "secret", "registry-pull"); err != nil {
		t.Errorf("the pull Secret went with the agent: %v", err)
	}
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"clusterPull": kit.Unset}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.TimedUp(ctx, "pulumi up (clusterPull off)", "up-cluster-pull-off"); err != nil {
		t.Fatal(err)
	}
	f.Report.Fact("cluster pull: pod %s/hello ran %s/%s (pull Secret of cluster-a, CA and hosts.toml from the node agent), printed %q; agent off: %d files removed from %s",
		apps, host, im.Ref(), kit.Greeting, len(installed), certs)
}

// nodeReachesRegistry makes the registry's hostname reach the ingress from this machine, the
// sandbox's node, as DNS and a load balancer would on a real cluster: an /etc/hosts line and a
// forward of 127.0.0.1:443 to the ingress address. The returned func undoes both.
func (f *fixture) nodeReachesRegistry(t *testing.T) (func(), error) {
	addr := f.IngressAddr
	h, port, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(h) == nil || !net.ParseIP(h).IsLoopback() {
		return nil, fmt.Errorf("the ingress address %q is not on this machine", addr)
	}
	var undo []func()
	done := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if port != "443" {
		ln, err := net.Listen("tcp", "127.0.0.1:443")
		if err != nil {
			return nil, fmt.Errorf("forward 127.0.0.1:443: %w", err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					up, err := net.Dial("tcp", addr)
					if err != nil {
						return
					}
					defer up.Close()
					go func() { _, _ = io.Copy(up, c) }()
					_, _ = io.Copy(c, up)
				}()
			}
		}()
		undo = append(undo, func() { ln.Close() })
	}
	const hostsFile = "/etc/hosts"
	orig, err := os.ReadFile(hostsFile)
	if err != nil {
		done()
		return nil, err
	}
	line := fmt.Sprintf("127.0.0.1 %s # registry-stack e2e %s\n", f.Settings.Hostname, f.Settings.Namespace)
	if err := os.WriteFile(hostsFile, append(orig, []byte(line)...), 0o644); err != nil {
		done()
		return nil, fmt.Errorf("add %s to %s: %w", f.Settings.Hostname, hostsFile, err)
	}
	undo = append(undo, func() {
		now, err := os.ReadFile(hostsFile)
		if err == nil {
			err = os.WriteFile(hostsFile, []byte(strings.ReplaceAll(string(now), line, "")), 0o644)
		}
		if err != nil {
			t.Errorf("remove the %s line from %s: %v", f.Settings.Hostname, hostsFile, err)
		}
	})
	return done, nil
}
