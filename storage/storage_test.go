package storage

import (
	"fmt"
	"strings"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
)

const (
	tStorageClass = "kubernetes:storage.k8s.io/v1:StorageClass"
	tPV           = "kubernetes:core/v1:PersistentVolume"
	tPVC          = "kubernetes:core/v1:PersistentVolumeClaim"
	tPVPatch      = "kubernetes:core/v1:PersistentVolumePatch"
	tStorage      = "registry-stack:index:Storage"
)

func TestHostPathVolumeSpec(t *testing.T) {
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := corev1.NewPersistentVolume(ctx, "pv", &corev1.PersistentVolumeArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String("pv")},
			Spec:     HostPathVolumeSpec("/data/registry", "20Gi", "ReadWriteMany", "node-a"),
		})
		return err
	})
	pv := m.Get(t, tPV, "pv")
	for _, c := range []struct {
		path []any
		want any
		why  string
	}{
		{[]any{"spec", "persistentVolumeReclaimPolicy"}, "Retain", "deleting the claim must not delete the images"},
		{[]any{"spec", "storageClassName"}, "", "an empty class keeps the default provisioner away"},
		{[]any{"spec", "hostPath", "path"}, "/data/registry", "the node directory given"},
		{[]any{"spec", "hostPath", "type"}, "DirectoryOrCreate", "the directory is created on first use"},
		{[]any{"spec", "capacity", "storage"}, "20Gi", "the size given"},
		{[]any{"spec", "accessModes", 0}, "ReadWriteMany", "the access mode given"},
		{[]any{"spec", "volumeMode"}, "Filesystem", "the registry needs a filesystem"},
		{[]any{"spec", "nodeAffinity", "required", "nodeSelectorTerms", 0, "matchExpressions", 0, "key"}, "kubernetes.io/hostname", "the directory exists on one node only"},
		{[]any{"spec", "nodeAffinity", "required", "nodeSelectorTerms", 0, "matchExpressions", 0, "values", 0}, "node-a", "the node given"},
	} {
		if got := pv.Lookup(c.path...); got != c.want {
			t.Errorf("%v = %#v, want %#v (%s)", c.path, got, c.want, c.why)
		}
	}
	if n := len(pv.Lookup("spec", "accessModes").([]any)); n != 1 {
		t.Errorf("%d access modes, want exactly the one given", n)
	}
}

// fsArgs is a complete filesystem store in mode, as the defaults table fills it.
func fsArgs(mode string) *Filesystem {
	return &Filesystem{Mode: mode, VolumeSize: "10Gi", ClaimSize: "10Gi", AccessMode: "ReadWriteOnce",
		HostPath: "/data/registry", StorageClassName: "standard", VolumeName: "old-pv"}
}

// The package sets no defaults (they are stackconfig's): a missing field is an error that names it.
func TestValidate(t *testing.T) {
	ns := pulumi.String("ns")
	for _, mode := range []string{ModeHostPath, ModeDynamic, ModeExisting} {
		if err := (&StorageArgs{Namespace: ns, Filesystem: fsArgs(mode)}).Validate(); err != nil {
			t.Errorf("complete %s args refused: %v", mode, err)
		}
	}
	for _, c := range []struct {
		name string
		args StorageArgs
		want []string // substrings of the error
	}{
		{"unknown mode", StorageArgs{Namespace: ns, Filesystem: &Filesystem{Mode: "nfs"}}, []string{`"nfs"`, ModeHostPath, ModeDynamic, ModeExisting}},
		{"mode is case sensitive", StorageArgs{Namespace: ns, Filesystem: &Filesystem{Mode: "HostPath"}}, []string{`"HostPath"`}},
		{"no mode", StorageArgs{Namespace: ns, Filesystem: &Filesystem{}}, []string{`unknown mode ""`}},
		{"existing without VolumeName", StorageArgs{Namespace: ns, Filesystem: &Filesystem{Mode: ModeExisting, ClaimSize: "1Gi", AccessMode: "ReadWriteOnce"}}, []string{"VolumeName", ModeExisting}},
		{"hostPath without a directory", StorageArgs{Namespace: ns, Filesystem: &Filesystem{Mode: ModeHostPath}}, []string{"AccessMode, ClaimSize, HostPath, VolumeSize"}},
		{"dynamic without a class", StorageArgs{Namespace: ns, Filesystem: &Filesystem{Mode: ModeDynamic, ClaimSize: "1Gi", AccessMode: "ReadWriteOnce"}}, []string{"StorageClassName"}},
		{"no namespace", StorageArgs{}, []string{"Namespace"}},
		{"no driver", StorageArgs{Namespace: ns}, []string{"driver"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.args.Validate()
			if err == nil {
				t.Fatalf("validate(%+v) accepted", c.args)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestNewStorageRejectsBadArgsBeforeRegistering(t *testing.T) {
	m, err := testutil.Run(t, nil, func(ctx *pulumi.Context) error {
		_, err := NewStorage(ctx, "data", &StorageArgs{Namespace: pulumi.String("ns"), Filesystem: &Filesystem{Mode: ModeExisting}})
		return err
	})
	if err == nil {
		t.Fatal("existing mode without VolumeName accepted")
	}
	if n := len(m.Resources()); n != 0 {
		t.Errorf("%d resources registered before the args were rejected", n)
	}
}

// storageRun registers one Storage component named name and returns the mocks and its outputs.
func storageRun(t *testing.T, name string, args *StorageArgs) (m *testutil.Mocks, claimName, volumeName string) {
	t.Helper()
	m = testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		s, err := NewStorage(ctx, name, args)
		if err != nil {
			return err
		}
		claimName, volumeName = resolve(t, s.ClaimName), resolve(t, s.VolumeName)
		return nil
	})
	return m, claimName, volumeName
}

func resolve(t *testing.T, out pulumi.StringOutput) string {
	t.Helper()
	v, _ := testutil.Resolve(t, out)
	return v
}

func TestHostPathModeBindsItsOwnVolume(t *testing.T) {
	m, claimName, volumeName := storageRun(t, "data", &StorageArgs{Namespace: pulumi.String("images"), Filesystem: &Filesystem{Mode: ModeHostPath, VolumeSize: "20Gi", ClaimSize: "15Gi", AccessMode: "ReadWriteOnce",
		HostPath: "/srv/registry", StorageClassName: "ignored-in-hostpath-mode"}})
	pv, pvc := m.Get(t, tPV, "data"), m.Get(t, tPVC, "data")
	if got := pv.String("metadata", "name"); got != "images-data" {
		t.Errorf("PV name = %q, want namespace-qualified images-data (PVs are cluster-scoped)", got)
	}
	if got := pvc.String("spec", "volumeName"); got != "images-data" {
		t.Errorf("claim volumeName = %q, want the PV images-data", got)
	}
	if got := pvc.Lookup("spec", "storageClassName"); got != "" {
		t.Errorf("claim storageClassName = %#v, want \"\" so the default provisioner does not take the claim", got)
	}
	if got := pv.String("spec", "capacity", "storage"); got != "20Gi" {
		t.Errorf("PV capacity = %q, want 20Gi", got)
	}
	if got := pvc.String("spec", "resources", "requests", "storage"); got != "15Gi" {
		t.Errorf("claim request = %q, want 15Gi", got)
	}
	if got := pv.String("spec", "hostPath", "path"); got != "/srv/registry" {
		t.Errorf("PV hostPath = %q, want /srv/registry", got)
	}
	if got := pvc.String("metadata", "namespace"); got != "images" {
		t.Errorf("claim namespace = %q, want images", got)
	}
	if n := len(m.OfType(tPVPatch)); n != 0 {
		t.Errorf("%d PV patches in hostPath mode; the PV is created with Retain", n)
	}
	if claimName != "data" || volumeName != "images-data" {
		t.Errorf("outputs claimName=%q volumeName=%q, want data and images-data", claimName, volumeName)
	}
}

func TestDynamicModeRetainsTheProvisionedVolume(t *testing.T) {
	m, claimName, volumeName := storageRun(t, "data", &StorageArgs{Namespace: pulumi.String("images"), Filesystem: &Filesystem{Mode: ModeDynamic, StorageClassName: "fast", ClaimSize: "30Gi",
		AccessMode: "ReadWriteMany"}})
	if n := len(m.OfType(tPV)); n != 0 {
		t.Errorf("dynamic mode registered %d PVs; the provisioner makes the volume", n)
	}
	pvc := m.Get(t, tPVC, "data")
	if got := pvc.String("spec", "accessModes", 0); got != "ReadWriteMany" {
		t.Errorf("claim access mode = %q, want ReadWriteMany", got)
	}
	// The claim uses a copy of the requested class that differs only in reclaimPolicy Retain.
	class := m.Get(t, tStorageClass, "data-retain")
	if got := pvc.String("spec", "storageClassName"); got != class.String("metadata", "name") || got != "images-data-retain" {
		t.Errorf("claim class = %q, want the retaining copy images-data-retain", got)
	}
	if got := class.String("reclaimPolicy"); got != "Retain" {
		t.Errorf("class copy reclaimPolicy = %q, want Retain", got)
	}
	// The mock cluster answers a read of class "fast" with provisioner mock.io/fast.
	if got := class.String("provisioner"); got != "mock.io/fast" {
		t.Errorf("class copy provisioner = %q, want the source class's mock.io/fast", got)
	}
	if got := class.String("volumeBindingMode"); got != "WaitForFirstConsumer" {
		t.Errorf("class copy volumeBindingMode = %q, want the source class's", got)
	}
	if n := len(m.OfType(tPVPatch)); n != 0 {
		t.Errorf("%d PV patches in dynamic mode: the volume name is unknown in preview", n)
	}
	if claimName != "data" || volumeName != "pvc-mock-data" {
		t.Errorf("outputs claimName=%q volumeName=%q, want data and pvc-mock-data", claimName, volumeName)
	}
}

func TestExistingModeBindsTheNamedVolume(t *testing.T) {
	m, _, volumeName := storageRun(t, "data", &StorageArgs{Namespace: pulumi.String("images"), Filesystem: &Filesystem{Mode: ModeExisting, VolumeName: "old-pv", StorageClassName: "nfs", ClaimSize: "10Gi", AccessMode: "ReadWriteOnce"}})
	if n := len(m.OfType(tPV)); n != 0 {
		t.Errorf("existing mode registered %d PVs", n)
	}
	pvc := m.Get(t, tPVC, "data")
	if got := pvc.String("spec", "volumeName"); got != "old-pv" {
		t.Errorf("claim volumeName = %q, want old-pv", got)
	}
	if got := pvc.String("spec", "storageClassName"); got != "nfs" {
		t.Errorf("claim class = %q, want the PV's class nfs (a mismatch keeps the claim Pending)", got)
	}
	if volumeName != "old-pv" {
		t.Errorf("output volumeName = %q, want old-pv", volumeName)
	}
}

func TestEveryModeProtectsTheData(t *testing.T) {
	for _, c := range []struct {
		mode string
		args StorageArgs
	}{
		{ModeHostPath, StorageArgs{Filesystem: fsArgs(ModeHostPath)}},
		{ModeDynamic, StorageArgs{Filesystem: fsArgs(ModeDynamic)}},
		{ModeExisting, StorageArgs{Filesystem: fsArgs(ModeExisting)}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			args := c.args
			args.Namespace = pulumi.String("images")
			m, _, volumeName := storageRun(t, "data", &args)
			for _, r := range m.Resources() {
				if r.Type == tStorage {
					continue
				}
				if want := "urn:pulumi:unit::registry-stack::" + tStorage + "::data"; r.Parent != want {
					t.Errorf("%s/%s parent = %q, want the Storage component", r.Type, r.Name, r.Parent)
				}
				if r.Type == tStorageClass {
					continue // holds no data; deleting it leaves its volumes alone
				}
				if !r.RetainOnDelete {
					t.Errorf("%s/%s has no retainOnDelete: `pulumi destroy` would delete it", r.Type, r.Name)
				}
			}
			// The bound volume must end up with reclaim policy Retain: either the PV we create or a
			// patch on the volume the claim binds.
			retained := false
			for _, pv := range m.OfType(tPV) {
				retained = retained || (pv.String("metadata", "name") == volumeName && pv.String("spec", "persistentVolumeReclaimPolicy") == "Retain")
			}
			for _, p := range m.OfType(tPVPatch) {
				retained = retained || (p.String("metadata", "name") == volumeName && p.String("spec", "persistentVolumeReclaimPolicy") == "Retain")
			}
			for _, sc := range m.OfType(tStorageClass) {
				claimClass := m.Get(t, tPVC, "data").String("spec", "storageClassName")
				retained = retained || (sc.String("metadata", "name") == claimClass && sc.String("reclaimPolicy") == "Retain")
			}
			if !retained {
				t.Errorf("mode %s: nothing makes the bound volume %q reclaim with Retain", c.mode, volumeName)
			}
		})
	}
}

// Without storage.filesystem.chownHostPath, a hostPath directory the registry's user cannot write stops the
// pod in its init container with what to do, instead of a registry that fails every push; the
// check itself runs under the restricted profile.
func TestWritableCheckContainer(t *testing.T) {
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := corev1.NewPod(ctx, "p", &corev1.PodArgs{Spec: &corev1.PodSpecArgs{
			Containers: corev1.ContainerArray{WritableCheckContainer("registry:3.1.2", 1000, DataDir, "/data/registry")},
		}})
		return err
	})
	c := m.Get(t, "kubernetes:core/v1:Pod", "p")
	cmd := fmt.Sprint(c.Lookup("spec", "containers", 0, "command"))
	for _, want := range []string{"touch", DataDir, "/data/registry is not writable by UID 1000", "install -d -o 1000 -g 1000 /data/registry", "storage.filesystem.chownHostPath=true"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command %s lacks %q", cmd, want)
		}
	}
	for path, want := range map[string]any{"runAsUser": float64(1000), "runAsNonRoot": true, "allowPrivilegeEscalation": false} {
		if got := c.Lookup("spec", "containers", 0, "securityContext", path); got != want {
			t.Errorf("securityContext.%s = %v, want %v", path, got, want)
		}
	}
	if got := fmt.Sprint(c.Lookup("spec", "containers", 0, "securityContext", "capabilities")); got != "map[drop:[ALL]]" {
		t.Errorf("capabilities = %s, want only drop ALL", got)
	}
}

// Growing the claim in place: a class that allows expansion passes it on to the Retain copy the
// claim uses, and pvcSize reaches only the claim's request, which the provider updates in place
// (pulumi-kubernetes replaces a claim only for accessModes, selector, storageClassName or
// volumeName). A class without it (the sandbox's local-path) has the API server refuse the update.
func TestClaimGrowsInPlaceWhereTheClassAllowsIt(t *testing.T) {
	for _, c := range []struct {
		class  string
		expand bool
	}{{"expandable", true}, {"fast", false}} {
		for _, size := range []string{"10Gi", "20Gi"} {
			m, _, _ := storageRun(t, "data", &StorageArgs{Namespace: pulumi.String("images"), Filesystem: &Filesystem{Mode: ModeDynamic,
				StorageClassName: c.class, ClaimSize: size, AccessMode: "ReadWriteOnce"}})
			class := m.Get(t, tStorageClass, "data-retain")
			if got, _ := class.Lookup("allowVolumeExpansion").(bool); got != c.expand {
				t.Errorf("class %s: the Retain copy's allowVolumeExpansion = %v, want the source's %v", c.class, got, c.expand)
			}
			pvc := m.Get(t, tPVC, "data")
			if got := pvc.String("spec", "resources", "requests", "storage"); got != size {
				t.Errorf("claim requests %q, want %s", got, size)
			}
			if got := pvc.String("spec", "storageClassName"); got != "images-data-retain" {
				t.Errorf("claim class %q changes with the size", got)
			}
		}
	}
}
