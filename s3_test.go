package main

import (
	"strings"
	"testing"

	"github.com/regstack/registry-stack/internal/testutil"
)

const tServiceAccount = "kubernetes:core/v1:ServiceAccount"

// s3Config is an S3 stack with a static key (marked secret by the test engine, as --secret would).
func s3Config() map[string]string {
	return map[string]string{
		"storage.s3.bucket": "registry-images", "storage.s3.region": "us-east-1",
		"storage.s3.endpoint": "https://s3.storage.svc:7070", "storage.s3.forcePathStyle": "true", "replicas": "3",
		"s3AccessKeyId": "AKIAUNITTESTKEYID", "s3SecretAccessKey": "unit-test-secret-access-key",
	}
}

func TestS3StackHasNoVolumeAndSpreadsItsReplicas(t *testing.T) {
	m := run(t, s3Config())
	for _, typ := range []string{tPV, tPVC, "kubernetes:storage.k8s.io/v1:StorageClass"} {
		if n := len(m.OfType(typ)); n != 0 {
			t.Errorf("S3 stack registered %d %s", n, typ)
		}
	}
	dep := m.Get(t, tDeployment, "registry")
	pod := func(path ...any) any { return dep.Lookup(append([]any{"spec", "template", "spec"}, path...)...) }
	if pod("affinity") != nil {
		t.Errorf("registry affinity = %v: replicas on shared storage must not be co-located by requirement", pod("affinity"))
	}
	keys := map[any]any{}
	for _, c := range pod("topologySpreadConstraints").([]any) {
		cm := c.(map[string]any)
		keys[cm["topologyKey"]] = cm["whenUnsatisfiable"]
	}
	if keys["kubernetes.io/hostname"] != "ScheduleAnyway" || keys["topology.kubernetes.io/zone"] != "ScheduleAnyway" {
		t.Errorf("spread = %v, want nodes and zones, ScheduleAnyway", keys)
	}
	for _, v := range pod("volumes").([]any) {
		if v.(map[string]any)["persistentVolumeClaim"] != nil {
			t.Errorf("registry pod mounts a claim in S3 mode: %v", v)
		}
	}
	if m.Get(t, tPDB, "registry").Lookup("spec", "maxUnavailable") != float64(1) {
		t.Error("PDB is not maxUnavailable 1")
	}
	gcPod := m.Get(t, tCronJob, "registry-gc").Lookup("spec", "jobTemplate", "spec", "template", "spec").(map[string]any)
	if gcPod["affinity"] != nil {
		t.Errorf("GC pod affinity = %v: with no claim to share it may run anywhere", gcPod["affinity"])
	}
	gcText := m.Dump(func(r testutil.Resource) bool { return r.Type == tCronJob })
	for _, want := range []string{"REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY", "registry-data-s3"} {
		if !strings.Contains(gcText, want) {
			t.Errorf("the GC collector lacks %s: it reaches the bucket as the registry does", want)
		}
	}
}

// The key lives in one Secret only: not in config.yml, a ConfigMap, a pod spec's plain env or an
// unencrypted output.
func TestS3CredentialsStayInTheSecret(t *testing.T) {
	cfg := s3Config()
	m := run(t, cfg)
	secret := m.Get(t, tSecret, "registry-data-s3")
	if !secret.IsSecret("stringData", "secretAccessKey") || !secret.IsSecret("stringData", "accessKeyId") {
		t.Error("S3 Secret data is not marked secret")
	}
	if !strings.Contains(m.Dump(func(x testutil.Resource) bool { return x.Name == "registry-data-s3" }), cfg["s3SecretAccessKey"]) {
		t.Fatal("the dump of the S3 Secret lacks its key: the search below would prove nothing")
	}
	for _, r := range m.Resources() {
		if r.Type == tSecret && r.Name == "registry-data-s3" {
			continue
		}
		text := m.Dump(func(x testutil.Resource) bool { return x.Type == r.Type && x.Name == r.Name })
		for _, cred := range []string{cfg["s3AccessKeyId"], cfg["s3SecretAccessKey"]} {
			if strings.Contains(text, cred) {
				t.Errorf("%s/%s contains an S3 credential", r.Type, r.Name)
			}
		}
	}
	plain, secretOut := outputsOf(t, cfg)
	for k, v := range plain {
		for _, cred := range []string{cfg["s3AccessKeyId"], cfg["s3SecretAccessKey"]} {
			if strings.Contains(v, cred) && !secretOut[k] {
				t.Errorf("output %s shows an S3 credential in plain text", k)
			}
		}
	}
	if !strings.Contains(plain["storage"], "bucket registry-images") || plain["claimName"] != "" {
		t.Errorf("outputs storage=%q claimName=%q, want the bucket and no claim", plain["storage"], plain["claimName"])
	}
}

// A workload identity annotates the ServiceAccounts of the registry and of the collector.
func TestS3WorkloadIdentityAnnotatesBothServiceAccounts(t *testing.T) {
	m := run(t, map[string]string{"storage.s3.bucket": "images", "storage.s3.region": "eu-west-1",
		"storage.s3.serviceAccountAnnotations": `{"eks.amazonaws.com/role-arn":"arn:aws:iam::123456789012:role/registry"}`})
	for _, name := range []string{"registry", "registry-gc"} {
		if got := m.Get(t, tServiceAccount, name).String("metadata", "annotations", "eks.amazonaws.com/role-arn"); got != "arn:aws:iam::123456789012:role/registry" {
			t.Errorf("ServiceAccount %s role annotation = %q", name, got)
		}
	}
	if got := m.Get(t, tDeployment, "registry").String("spec", "template", "spec", "serviceAccountName"); got != "registry" {
		t.Errorf("registry pods run as ServiceAccount %q, want registry", got)
	}
	if n := len(m.OfType(tSecret)); n != 3 {
		t.Errorf("%d Secrets, want the three of the default stack (no S3 Secret without a key)", n)
	}
	if got := m.Get(t, tDeployment, "registry").Lookup("spec", "template", "spec", "serviceAccountName"); got == nil {
		t.Error("no serviceAccountName")
	}
}

// The default stack keeps the namespace's default ServiceAccount for the registry pods.
func TestFilesystemStackHasNoRegistryServiceAccount(t *testing.T) {
	m := run(t, nil)
	for _, sa := range m.OfType(tServiceAccount) {
		if sa.Name == "registry" {
			t.Error("a registry ServiceAccount without a workload identity to bind")
		}
	}
}

// A rotated S3 key rolls the registry pods: they read it from the environment only at start.
func TestS3KeyRotationRollsTheRegistry(t *testing.T) {
	checksum := func(secretKey string) string {
		cfg := s3Config()
		cfg["s3SecretAccessKey"] = secretKey
		dep := run(t, cfg).Get(t, tDeployment, "registry")
		return dep.String("spec", "template", "metadata", "annotations", "checksum/config")
	}
	before, after := checksum("first-secret-access-key"), checksum("second-secret-access-key")
	if before == "" || before == after {
		t.Errorf("checksum/config %q before and %q after the key changed: the pods would keep the old key", before, after)
	}
	if strings.Contains(before, "first-secret-access-key") {
		t.Error("the checksum annotation carries the key itself")
	}
}
