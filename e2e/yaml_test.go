//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// yamlResource is the RegistryStack's name in examples/yaml/Pulumi.yaml: it names every object.
const yamlResource = "registry-yaml"

// stepYAMLProgram deploys examples/yaml (a Pulumi YAML program) through the component provider
// built from this tree, into the track's namespace beside the track's own stack: invalid input is
// refused naming the key, the registry answers through the Ingress with its own CA and accounts,
// GC succeeds on it while it is empty and leaves it writable, an image pushed with its second
// account pulls back byte for byte, the track's stack still serves
// its images and refuses the YAML stack's password; then the YAML stack is destroyed.
func (f *fixture) stepYAMLProgram(t *testing.T) {
	need(t, f.Client != nil && f.imgKeep != nil, "deployment with an image")
	ctx := context.Background()
	work := filepath.Join(f.Settings.WorkDir, "yaml")
	plugins, project := filepath.Join(work, "plugins"), filepath.Join(work, "project")
	for _, d := range []string{plugins, project} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := f.Timed("build the component provider", func() (string, error) {
		_, err := kit.RunCmd(ctx, f.RepoRoot, nil, "go", "build", "-o", filepath.Join(plugins, "pulumi-resource-registry-stack"), "./cmd/pulumi-resource-registry-stack")
		return "cmd/pulumi-resource-registry-stack", err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The example as written, but for where its plugin is found.
	example, err := os.ReadFile(filepath.Join(f.RepoRoot, "examples", "yaml", "Pulumi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const pluginPath = "path: ../../.bin"
	if !strings.Contains(string(example), pluginPath) {
		t.Fatalf("examples/yaml/Pulumi.yaml no longer loads its plugin with %q", pluginPath)
	}
	program := strings.Replace(string(example), pluginPath, "path: "+plugins, 1)
	if err := os.WriteFile(filepath.Join(project, "Pulumi.yaml"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	cli, err := kit.NewPulumiCLI(project, work, f.Settings.LogDir, "yaml-"+f.Settings.Stack)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.InitStack(ctx); err != nil {
		t.Fatal(err)
	}
	hostname := "yaml." + f.Settings.Hostname
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			if _, err := cli.RunLong(ctx, kit.DestroyTimeout, "yaml-destroy-cleanup", "destroy", "--yes", "--skip-preview"); err != nil {
				t.Errorf("destroy the YAML stack: %v", err)
			}
		}
		if _, err := cli.Run(ctx, 2*time.Minute, false, "stack", "rm", "--yes", "--force", "--preserve-config"); err != nil {
			t.Errorf("remove the YAML stack: %v", err)
		}
	})

	// Invalid input goes through the same validation as stack config, before anything exists.
	config := map[string]string{
		"kubeContext": f.Settings.KubeContext, "namespace": f.Settings.Namespace, "hostname": "not_a_hostname",
		"ingressClassName": f.Settings.IngressClass, "storageClassName": f.Settings.StorageClass,
		"registryImage": f.Settings.RegistryImage, "redisImage": f.Settings.RedisImage, "gcKubectlImage": f.Settings.KubectlImage,
	}
	if err := cli.SetConfig(ctx, config); err != nil {
		t.Fatal(err)
	}
	out, err := cli.RunLong(ctx, kit.PreviewTimeout, "yaml-preview-invalid", "preview")
	if err == nil || !strings.Contains(err.Error()+out, `config "hostname": "not_a_hostname" is invalid`) {
		t.Errorf("an invalid hostname through the component provider: err %v, want the key named\n%s", err, kit.Tail(out, 10))
	}
	if err := cli.SetConfig(ctx, map[string]string{"hostname": hostname}); err != nil {
		t.Fatal(err)
	}

	err = f.Timed("pulumi up (YAML program)", func() (string, error) {
		ops, err := cli.Up(ctx, "yaml-up")
		return fmt.Sprintf("%d resources created", countOps(ops, "create")), err
	})
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	outputs, err := cli.Outputs(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	str := func(k string) string { s, _ := outputs[k].(string); return s }
	pw, _ := outputs["passwords"].(map[string]any)
	ciPassword, _ := pw["ci"].(string)
	if str("url") != "https://"+hostname || str("deploymentName") != yamlResource || str("username") != "admin" || len(ciPassword) < 24 || str("caCertPem") == "" {
		t.Fatalf("YAML stack outputs: url %q, deploymentName %q, username %q, ci password %d chars, CA %d bytes",
			str("url"), str("deploymentName"), str("username"), len(ciPassword), len(str("caCertPem")))
	}
	if err := f.Kube.RolloutStatus(ctx, yamlResource, 3*time.Minute); err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}

	hc, err := kit.NewHTTPClient(hostname, f.IngressAddr, []byte(str("caCertPem")))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := kit.NewRegistryClient(hc, "https://"+hostname, "ci", ciPassword)
	if err != nil {
		t.Fatal(err)
	}
	err = kit.Poll(ctx, 2*time.Minute, 2*time.Second, func() (bool, error) {
		code, err := ci.Ping(ctx, true, "", "")
		return err == nil && code == http.StatusUnauthorized, nil
	})
	if err != nil {
		t.Fatalf("https://%s/v2/ never answered 401 through the Ingress: %v", hostname, err)
	}
	// GC on a registry nothing was pushed to yet (plain `registry garbage-collect` fails there:
	// no repositories directory), with the current program: this stack is the suite's only fresh
	// one (the track's own was deployed by the previous release and has an image).
	suffix, err := kit.RandomSuffix()
	if err != nil {
		t.Fatal(err)
	}
	err = f.Timed("GC job (empty registry, YAML stack)", func() (string, error) {
		res, err := f.Kube.RunJobFromCronJob(ctx, yamlResource+"-gc", "e2e-yaml-gc-empty-"+suffix, kit.GCJobTimeout)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("succeeded in %s", res.Duration.Round(time.Second)), f.Kube.RolloutStatus(ctx, yamlResource, 3*time.Minute)
	})
	if err != nil {
		t.Fatalf("GC on the empty YAML stack: %v", err)
	}
	img, err := kit.RandomImage("yaml/app", "v1", 2, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Timed("push + pull (YAML stack, account ci)", func() (string, error) {
		if _, err := ci.PushImage(ctx, img); err != nil {
			return "", err
		}
		n, err := ci.PullImage(ctx, img.Tag, img)
		return fmt.Sprintf("%s, %s", img.Ref(), kit.MiB(n)), err
	})
	if err != nil {
		t.Errorf("push/pull through the YAML stack: %v", err)
	}
	// Side by side: two registries in one namespace, each with its own accounts and data.
	if code, err := ci.Ping(ctx, false, f.Out.Username, f.Out.Password); err != nil || code != http.StatusUnauthorized {
		t.Errorf("the track stack's admin password on the YAML stack: HTTP %d, %v; want 401", code, err)
	}
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
		t.Errorf("the track's own stack beside the YAML stack: %v", err)
	}

	err = f.Timed("pulumi destroy (YAML program)", func() (string, error) {
		_, err := cli.RunLong(ctx, kit.DestroyTimeout, "yaml-destroy", "destroy", "--yes", "--skip-preview")
		return "", err
	})
	if err != nil {
		t.Fatal(err)
	}
	destroyed = true
	if _, err := f.Kube.NS(ctx, "get", "deployment", yamlResource); err == nil {
		t.Errorf("deployment %s still exists after the YAML stack's destroy", yamlResource)
	}
	// Its claim is kept on destroy, as every stack's (the data survives a destroy mistake); the
	// track's teardown deletes its volume with the namespace's.
	if _, err := f.Kube.NS(ctx, "delete", "pvc", yamlResource+"-data", "--wait=false"); err != nil {
		t.Errorf("delete the YAML stack's retained claim: %v", err)
	}
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
		t.Errorf("the track's own stack after the YAML stack's destroy: %v", err)
	}
}
