//go:build e2e

package bench

import (
	"archive/tar"
	"bufio"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// Variants of the data path, in the order of the first round (later rounds rotate it).
const (
	varIngress = "ingress" // https via the ingress address (sandbox: kubectl port-forward to Traefik) -> 2 replicas + Redis
	varDirect  = "direct"  // kubectl port-forward to one registry pod's port 5000, plain HTTP
	varPF      = "pf"      // kubectl port-forward alone: the same bytes to/from nc in a pod
	varDisk    = "disk"    // plain copy of the layer files on the registry's filesystem (+fsync) / read back (+sha256)
	// From inside the cluster (no port-forward): benchpod in the pf pod.
	varClusterIngress = "cluster-ingress" // -> the ingress controller's HTTPS entry point with the registry's hostname (TLS verified)
	varClusterSvc     = "cluster-svc"     // -> the registry Service (plain HTTP)
)

// dataVariants lists every variant in report order.
var dataVariants = []string{varIngress, varDirect, varPF, varClusterIngress, varClusterSvc, varDisk}

// rotate returns vs starting at element r (mod len).
func rotate(vs []string, r int) []string {
	r %= len(vs)
	return append(append([]string{}, vs[r:]...), vs[:r]...)
}

const mediaTypeLayerTar = "application/vnd.oci.image.layer.v1.tar"

// fileLayer is a layer blob kept in a file (big images are streamed, never held in memory).
type fileLayer struct {
	Path   string
	Digest string
	Size   int64
}

// fileImage is an image whose layers are files: random content in a tar, a config, a manifest.
type fileImage struct {
	Repo, Tag string
	Layers    []fileLayer
	Config    kit.Blob
	Manifest  []byte
	Digest    string
}

func (im *fileImage) Bytes() int64 {
	n := int64(len(im.Config.Data))
	for _, l := range im.Layers {
		n += l.Size
	}
	return n
}

// genFileImage writes `layers` uncompressed tar layers of exactly layerBytes each (one file of
// random bytes from ChaCha8 seeded by crypto/rand, so no two runs share a blob) into dir, fsyncs
// them, and builds the config and manifest.
func genFileImage(dir, repo, tag string, layers int, layerBytes int64) (*fileImage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layer dir: %w", err)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	rng := rand.NewChaCha8(seed)
	im := &fileImage{Repo: repo, Tag: tag}
	var diffIDs []string
	for i := range layers {
		l := fileLayer{Path: filepath.Join(dir, fmt.Sprintf("layer-%d.tar", i)), Size: layerBytes}
		var err error
		if l.Digest, err = writeRandomTar(l.Path, fmt.Sprintf("bench/layer-%d.bin", i), layerBytes, rng); err != nil {
			return nil, err
		}
		diffIDs = append(diffIDs, l.Digest) // uncompressed: the diff ID is the blob digest
		im.Layers = append(im.Layers, l)
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"org.opencontainers.image.title": "regstack-bench " + repo + ":" + tag}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	im.Config = kit.NewBlob(kit.MediaTypeConfig, cfg)
	m := kit.OCIManifest{
		SchemaVersion: 2,
		MediaType:     kit.MediaTypeManifest,
		Config:        kit.Descriptor{MediaType: kit.MediaTypeConfig, Digest: im.Config.Digest, Size: len(cfg)},
	}
	for _, l := range im.Layers {
		m.Layers = append(m.Layers, kit.Descriptor{MediaType: mediaTypeLayerTar, Digest: l.Digest, Size: int(l.Size)})
	}
	if im.Manifest, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	im.Digest = kit.SHA256Digest(im.Manifest)
	return im, nil
}

// writeRandomTar writes a tar of exactly total bytes (header, content, end-of-archive blocks)
// holding one file of random content, fsyncs it and returns its digest.
func writeRandomTar(path, name string, total int64, rng io.Reader) (string, error) {
	content := total - 512 - 1024
	if content < 0 || total%512 != 0 {
		return "", fmt.Errorf("layer size %d: want a multiple of 512 of at least 1536", total)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("create layer: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	tw := tar.NewWriter(bw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: content, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return "", fmt.Errorf("tar header: %w", err)
	}
	if _, err := io.CopyN(tw, rng, content); err != nil {
		return "", fmt.Errorf("tar content: %w", err)
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("tar close: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", fmt.Errorf("write layer: %w", err)
	}
	// Written back before any measurement, so no variant pays for the generator's dirty pages.
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("fsync layer: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat layer: %w", err)
	}
	if st.Size() != total {
		return "", fmt.Errorf("layer %s is %d bytes, want %d", path, st.Size(), total)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close layer: %w", err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// forEach runs fn(0..n-1) with at most parallel at once and returns the first error.
func forEach(n, parallel int, fn func(i int) error) error {
	sem := make(chan struct{}, max(1, parallel))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		sem <- struct{}{}
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			<-sem
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// pushBlob uploads one blob like docker and crane do: HEAD (must be absent: the data is fresh),
// POST to start, one streamed PATCH with the whole content, PUT with the digest.
func pushBlob(ctx context.Context, c *kit.RegistryClient, repo, digest string, size int64, open func() (io.ReadCloser, error)) error {
	blobURL := c.URL("/v2/" + repo + "/blobs/" + digest)
	resp, _, err := c.Once(ctx, kit.Request{Method: http.MethodHead, URL: blobURL, Expect: []int{http.StatusOK, http.StatusNotFound}})
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return fmt.Errorf("blob %s already in %s: the benchmark needs fresh data", digest, repo)
	}
	resp, _, err = c.Once(ctx, kit.Request{Method: http.MethodPost, URL: c.URL("/v2/" + repo + "/blobs/uploads/"), Expect: []int{http.StatusAccepted}})
	if err != nil {
		return err
	}
	loc, err := c.Resolve(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	body, err := open()
	if err != nil {
		return err
	}
	defer body.Close()
	h := http.Header{}
	h.Set("Content-Type", "application/octet-stream")
	resp, _, err = c.Once(ctx, kit.Request{Method: http.MethodPatch, URL: loc, Stream: body, Size: size, Header: h, Expect: []int{http.StatusAccepted}})
	if err != nil {
		return err
	}
	if loc, err = c.Resolve(resp.Header.Get("Location")); err != nil {
		return err
	}
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	resp, _, err = c.Once(ctx, kit.Request{Method: http.MethodPut, URL: u.String(), Expect: []int{http.StatusCreated}})
	if err != nil {
		return err
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != digest {
		return fmt.Errorf("upload committed as %s, want %s: %w", got, digest, kit.ErrDigestMismatch)
	}
	return nil
}

// pushFileImage pushes the layers (parallel at once), the config, then the manifest by tag.
func pushFileImage(ctx context.Context, c *kit.RegistryClient, im *fileImage, parallel int) error {
	err := forEach(len(im.Layers), parallel, func(i int) error {
		l := im.Layers[i]
		return pushBlob(ctx, c, im.Repo, l.Digest, l.Size, func() (io.ReadCloser, error) { return os.Open(l.Path) })
	})
	if err != nil {
		return fmt.Errorf("push %s:%s: %w", im.Repo, im.Tag, err)
	}
	if err := pushBlob(ctx, c, im.Repo, im.Config.Digest, int64(len(im.Config.Data)), func() (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(string(im.Config.Data))), nil
	}); err != nil {
		return fmt.Errorf("push %s:%s config: %w", im.Repo, im.Tag, err)
	}
	return putManifest(ctx, c, im.Repo, im.Tag, im.Manifest, im.Digest)
}

func putManifest(ctx context.Context, c *kit.RegistryClient, repo, tag string, manifest []byte, digest string) error {
	h := http.Header{}
	h.Set("Content-Type", kit.MediaTypeManifest)
	resp, _, err := c.Once(ctx, kit.Request{Method: http.MethodPut, URL: c.URL("/v2/" + repo + "/manifests/" + tag), Body: manifest, Header: h, Expect: []int{http.StatusCreated}})
	if err != nil {
		return fmt.Errorf("manifest %s:%s: %w", repo, tag, err)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		return fmt.Errorf("manifest %s:%s stored as %q, want %s", repo, tag, got, digest)
	}
	return nil
}

// getBlobHashed streams a blob through sha256 (as a client verifying a pull does) and checks size
// and digest; nothing is kept in memory.
func getBlobHashed(ctx context.Context, c *kit.RegistryClient, repo, digest string, size int64) error {
	u := c.URL("/v2/" + repo + "/blobs/" + digest)
	resp, err := c.Send(ctx, kit.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &kit.StatusError{Method: http.MethodGet, URL: u, Code: resp.StatusCode, Body: string(data)}
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: after %d bytes: %w", u, n, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != size || got != digest {
		return fmt.Errorf("blob %s: got %d bytes hashing to %s, want %d bytes: %w", digest, n, got, size, kit.ErrDigestMismatch)
	}
	return nil
}

// pullFileImage fetches the manifest by tag, checks it, then every blob (parallel at once),
// hashing each.
func pullFileImage(ctx context.Context, c *kit.RegistryClient, im *fileImage, parallel int) error {
	h := http.Header{}
	h.Set("Accept", kit.ManifestAccept)
	_, data, err := c.Once(ctx, kit.Request{Method: http.MethodGet, URL: c.URL("/v2/" + im.Repo + "/manifests/" + im.Tag), Header: h, Expect: []int{http.StatusOK}})
	if err != nil {
		return fmt.Errorf("pull %s:%s: %w", im.Repo, im.Tag, err)
	}
	if got := kit.SHA256Digest(data); got != im.Digest {
		return fmt.Errorf("pull %s:%s: manifest %s, want %s: %w", im.Repo, im.Tag, got, im.Digest, kit.ErrDigestMismatch)
	}
	var m kit.OCIManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("pull %s:%s: decode manifest: %w", im.Repo, im.Tag, err)
	}
	descs := append(append([]kit.Descriptor{}, m.Layers...), m.Config)
	return forEach(len(descs), parallel, func(i int) error {
		return getBlobHashed(ctx, c, im.Repo, descs[i].Digest, int64(descs[i].Size))
	})
}

// copyFileSync copies src to dst with a plain read/write loop (1 MiB buffer; no copy_file_range,
// so the bytes really go through memory like the registry's) and fsyncs dst.
func copyFileSync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	defer out.Close()
	buf := make([]byte, 1<<20)
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return fmt.Errorf("copy to %s: %w", dst, err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("copy from %s: %w", src, rerr)
		}
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("close %s: %w", dst, err)
	}
	return nil
}

// hashFile reads a file through sha256 and compares the digest.
func hashFile(path, digest string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%s hashes to %s, want %s: %w", path, got, digest, kit.ErrDigestMismatch)
	}
	return nil
}

// pfProbe is a pod running two nc servers behind a kubectl port-forward: a sink that reads
// exactly one layer and answers "ok", and a source that sends one layer of random bytes. It
// measures what the port-forward alone can carry, with the same client work as the registry
// variants (file read on upload, sha256 on download).
type pfProbe struct {
	sink, source string // 127.0.0.1:port
	layerBytes   int64
	stop         func()
}

const pfPodName = "bench-pf"

func (b *bench) startPFProbe(ctx context.Context, layerBytes int64) (*pfProbe, error) {
	k := b.f.Kube
	// A part that failed before its cleanup leaves the pod behind; the name must be free.
	if _, err := k.NS(ctx, "delete", "pod", pfPodName, "--ignore-not-found", "--wait=true"); err != nil {
		return nil, fmt.Errorf("delete old %s pod: %w", pfPodName, err)
	}
	script := fmt.Sprintf(`set -e
head -c %[1]d /dev/urandom > /tmp/blob
nc -ll -p 9000 -e sh -c 'head -c %[1]d >/dev/null && echo ok' &
nc -ll -p 9001 -e cat /tmp/blob &
touch /tmp/ready
wait`, layerBytes)
	if _, err := k.NS(ctx, "run", pfPodName, "--image", kit.Env("BENCH_BUSYBOX_IMAGE", "busybox:1.35.0"), "--image-pull-policy", "IfNotPresent",
		"--restart", "Never", "--labels", "app.kubernetes.io/name=registry-stack-bench", "--command", "--", "sh", "-c", script); err != nil {
		return nil, fmt.Errorf("start %s pod: %w", pfPodName, err)
	}
	// Ready first: port-forward refuses a pod the API still reports Pending (seen right after the
	// deploy part's cycles, although exec already worked), then the nc servers' marker file.
	if _, err := k.NS(ctx, "wait", "--for=condition=Ready", "pod/"+pfPodName, "--timeout=120s"); err != nil {
		return nil, fmt.Errorf("%s pod not Ready: %w\nevents:\n%s", pfPodName, err, k.Events(ctx))
	}
	err := kit.Poll(ctx, 2*time.Minute, time.Second, func() (bool, error) {
		_, err := k.NS(ctx, "exec", pfPodName, "--", "test", "-e", "/tmp/ready")
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s pod not ready: %w\nevents:\n%s", pfPodName, err, k.Events(ctx))
	}
	addrs, stop, err := k.PortForward(ctx, b.f.Settings.Namespace, "pod/"+pfPodName, "9000", "9001")
	if err != nil {
		return nil, err
	}
	return &pfProbe{sink: addrs[0], source: addrs[1], layerBytes: layerBytes, stop: stop}, nil
}

func (b *bench) stopPFProbe(ctx context.Context, p *pfProbe) error {
	if p != nil {
		p.stop()
	}
	if _, err := b.f.Kube.NS(ctx, "delete", "pod", pfPodName, "--ignore-not-found", "--wait=false"); err != nil {
		return fmt.Errorf("delete %s pod: %w", pfPodName, err)
	}
	return nil
}

func dialLoopback(ctx context.Context, addr string) (net.Conn, error) {
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("refusing to dial %q: not 127.0.0.1", addr)
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// push sends each layer file over its own connection to the sink and waits for "ok".
func (p *pfProbe) push(ctx context.Context, layers []fileLayer, parallel int) error {
	return forEach(len(layers), parallel, func(i int) error {
		if layers[i].Size != p.layerBytes {
			return fmt.Errorf("pf sink expects %d bytes, layer has %d", p.layerBytes, layers[i].Size)
		}
		conn, err := dialLoopback(ctx, p.sink)
		if err != nil {
			return fmt.Errorf("pf sink: %w", err)
		}
		defer conn.Close()
		f, err := os.Open(layers[i].Path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(conn, f); err != nil {
			return fmt.Errorf("pf sink: send: %w", err)
		}
		ack := make([]byte, 3)
		if _, err := io.ReadFull(conn, ack); err != nil {
			return fmt.Errorf("pf sink: no ack: %w", err)
		}
		if string(ack) != "ok\n" {
			return fmt.Errorf("pf sink: ack %q", ack)
		}
		return nil
	})
}

// pull reads n layers from the source, each over its own connection, through sha256.
func (p *pfProbe) pull(ctx context.Context, n, parallel int) error {
	return forEach(n, parallel, func(int) error {
		conn, err := dialLoopback(ctx, p.source)
		if err != nil {
			return fmt.Errorf("pf source: %w", err)
		}
		defer conn.Close()
		h := sha256.New()
		got, err := io.CopyN(h, conn, p.layerBytes)
		if err != nil {
			return fmt.Errorf("pf source: %d of %d bytes: %w", got, p.layerBytes, err)
		}
		return nil
	})
}

// clusterIngressAddr is the in-cluster host:port of the ingress controller's HTTPS entry point
// (sandbox: Traefik's Service), or "" when unknown. The registry is not served on plain HTTP.
func (b *bench) clusterIngressAddr() string {
	def := ""
	if b.f.Settings.IngressClass == "traefik" {
		def = "traefik.ingress.svc.cluster.local:443"
	}
	return kit.Env("BENCH_CLUSTER_INGRESS_ADDR", def)
}

// clusterOp pushes fresh random layers or pulls im's layers from inside the cluster with
// benchpod (the same protocol steps as the host client, Go net/http and sha256) in the pf pod, to
// the registry Service or through the ingress controller's HTTPS entry point (TLS verified against
// the stack's CA): the data path without the port-forward. The time is measured by benchpod; the credentials go in on stdin.
func (b *bench) clusterOp(ctx context.Context, variant, op string, im *fileImage, parallel int) (clusterResult, error) {
	args := []string{"/tmp/benchpod", "-mode", op, "-parallel", fmt.Sprint(parallel)}
	if b.storeCA != "" {
		args = append(args, "-store-ca-b64", base64.StdEncoding.EncodeToString([]byte(b.storeCA)))
	}
	if variant == varClusterIngress {
		args = append(args, "-base", "https://"+b.f.Settings.Hostname, "-connect", b.clusterIngressAddr(),
			"-ca-b64", base64.StdEncoding.EncodeToString([]byte(b.f.Out.CACertPEM)))
	} else {
		args = append(args, "-base", fmt.Sprintf("http://%s.%s.svc.cluster.local:%d", b.f.Out.ServiceName, b.f.Settings.Namespace, 5000))
	}
	if op == "push" {
		args = append(args, "-repo", "bench/data-"+variant, "-layers", fmt.Sprint(len(im.Layers)), "-layer-bytes", fmt.Sprint(im.Layers[0].Size))
	} else {
		var bl []string
		for _, l := range im.Layers {
			bl = append(bl, fmt.Sprintf("%s:sz=%d", l.Digest, l.Size))
		}
		args = append(args, "-repo", im.Repo, "-blobs", strings.Join(bl, ","))
	}
	out, err := b.f.Kube.ExecStdin(ctx, pfPodName, b.f.Out.Username+":"+b.f.Out.Password+"\n", args...)
	if err != nil {
		return clusterResult{}, err
	}
	var r struct {
		Seconds    float64 `json:"seconds"`
		Bytes      int64   `json:"bytes"`
		Redirected int     `json:"redirected"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil || r.Seconds <= 0 {
		return clusterResult{}, fmt.Errorf("benchpod %s %s: output %q: %v", variant, op, out, err)
	}
	return clusterResult{time.Duration(r.Seconds * float64(time.Second)), r.Bytes, r.Redirected}, nil
}

// clusterResult is one benchpod transfer: its time inside the pod, the bytes, and how many blob
// downloads came from another host than the registry (redirects to the object store).
type clusterResult struct {
	d          time.Duration
	bytes      int64
	redirected int
}

// installBenchPod builds benchpod for the cluster's node (static, linux/amd64 like the host) and
// copies it into the pf pod.
func (b *bench) installBenchPod(ctx context.Context) error {
	bin := filepath.Join(b.f.Settings.WorkDir, "benchpod")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := kit.RunCmd(bctx, b.f.RepoRoot, []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local"}, "go", "build", "-tags", "e2e", "-trimpath", "-o", bin, "./bench/benchpod"); err != nil {
		return fmt.Errorf("build benchpod: %w", err)
	}
	if _, err := b.f.Kube.NS(ctx, "cp", bin, pfPodName+":/tmp/benchpod"); err != nil {
		return fmt.Errorf("copy benchpod into %s: %w", pfPodName, err)
	}
	if _, err := b.f.Kube.NS(ctx, "exec", pfPodName, "--", "chmod", "755", "/tmp/benchpod"); err != nil {
		return fmt.Errorf("chmod benchpod: %w", err)
	}
	return nil
}

// warmUp pushes a small fresh image (256 KiB layers) to repo through push and pulls it back
// through pull, unrecorded: connections, TLS sessions and the first requests happen before the
// measured rounds.
func (b *bench) warmUp(ctx context.Context, dir, repo string, push, pull *kit.RegistryClient) error {
	im, err := genFileImage(dir, repo, "w", b.cfg.Layers, 256<<10)
	if err != nil {
		return err
	}
	if err := pushFileImage(ctx, push, im, b.cfg.Parallel); err != nil {
		return fmt.Errorf("warm-up push: %w", err)
	}
	if err := pullFileImage(ctx, pull, im, b.cfg.Parallel); err != nil {
		return fmt.Errorf("warm-up pull: %w", err)
	}
	return nil
}

// newDataResult starts the result of a data-path part, stored by set (under the results' lock),
// and returns it with the layer size of the configured image.
func (b *bench) newDataResult(set func(*dataResult)) (*dataResult, int64) {
	res := &dataResult{Layers: b.cfg.Layers, Parallel: b.cfg.Parallel}
	b.res.mu.Lock()
	set(res)
	b.res.mu.Unlock()
	return res, int64(b.cfg.SizeMiB/b.cfg.Layers) << 20
}

// record adds a transfer to res (MiB/s computed here) and logs it.
func (b *bench) record(t *testing.T, res *dataResult, s dataSample) {
	t.Helper()
	s.MiBps = float64(s.Bytes) / (1 << 20) / s.Seconds
	b.res.mu.Lock()
	res.Samples = append(res.Samples, s)
	b.res.mu.Unlock()
	t.Logf("round %d/%d %-4s %-20s %6.1f MiB in %6.2fs = %7.1f MiB/s", s.Round, b.cfg.Runs, s.Op, s.Variant, float64(s.Bytes)/(1<<20), s.Seconds, s.MiBps)
}

// benchData measures push and pull of a fresh random image per round and variant, the variants
// interleaved (and rotated) within each round so that machine noise hits all of them alike.
func (b *bench) benchData(t *testing.T) {
	ctx := context.Background()
	cfg := b.cfg
	res, layerBytes := b.newDataResult(func(r *dataResult) { b.res.Data = r })

	ingress, err := b.newIngressClient()
	if err != nil {
		t.Fatal(err)
	}
	direct, pod, stopDirect, err := b.directToPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stopDirect()
	t.Logf("direct: port-forward to pod %s", pod)
	pf, err := b.startPFProbe(ctx, layerBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.stopPFProbe(ctx, pf); err != nil {
			t.Error(err)
		}
	}()
	base := filepath.Join(b.f.Settings.WorkDir, "bench-data")
	defer os.RemoveAll(base)
	variants := dataVariants
	if b.clusterIngressAddr() == "" {
		variants = []string{varIngress, varDirect, varPF, varClusterSvc, varDisk}
		b.res.note("in-cluster runs through the ingress controller skipped: set BENCH_CLUSTER_INGRESS_ADDR (host:port of the controller's HTTPS Service port)")
	}
	if err := b.installBenchPod(ctx); err != nil {
		t.Fatal(err)
	}

	op := func(ctx context.Context, fn func(ctx context.Context) error) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
		defer cancel()
		start := time.Now()
		err := fn(ctx)
		return time.Since(start), err
	}

	// Warm-up (not recorded): connections, TLS sessions, the registry's first writes.
	{
		dir := filepath.Join(base, "warmup")
		for _, v := range []struct {
			c    *kit.RegistryClient
			repo string
		}{{ingress, "bench/warmup-ingress"}, {direct, "bench/warmup-direct"}} {
			im, err := genFileImage(filepath.Join(dir, strings.ReplaceAll(v.repo, "/", "_")), v.repo, "w", cfg.Layers, 256<<10)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := op(ctx, func(ctx context.Context) error { return pushFileImage(ctx, v.c, im, cfg.Parallel) }); err != nil {
				t.Fatalf("warm-up push: %v", err)
			}
			if _, err := op(ctx, func(ctx context.Context) error { return pullFileImage(ctx, v.c, im, cfg.Parallel) }); err != nil {
				t.Fatalf("warm-up pull: %v", err)
			}
		}
		if err := pf.pull(ctx, 1, 1); err != nil {
			t.Fatalf("warm-up pf: %v", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}

	failures := 0
	for r := 0; r < cfg.Runs; r++ {
		dir := filepath.Join(base, fmt.Sprintf("round-%d", r))
		tag := fmt.Sprintf("r%d", r)
		imIngress, err := genFileImage(filepath.Join(dir, "ingress"), "bench/data-ingress", tag, cfg.Layers, layerBytes)
		if err != nil {
			t.Fatal(err)
		}
		imDirect, err := genFileImage(filepath.Join(dir, "direct"), "bench/data-direct", tag, cfg.Layers, layerBytes)
		if err != nil {
			t.Fatal(err)
		}
		res.ImageBytes = imIngress.Bytes()
		copyDir := filepath.Join(dir, "copy")
		if err := os.MkdirAll(copyDir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, phase := range []string{"push", "pull"} {
			order := rotate(variants, r)
			for seq, v := range order {
				var d time.Duration
				var bytes int64
				switch v {
				case varIngress, varDirect:
					c, im := ingress, imIngress
					if v == varDirect {
						c, im = direct, imDirect
					}
					bytes = im.Bytes()
					d, err = op(ctx, func(ctx context.Context) error {
						if phase == "push" {
							return pushFileImage(ctx, c, im, cfg.Parallel)
						}
						return pullFileImage(ctx, c, im, cfg.Parallel)
					})
				case varPF:
					bytes = layerBytes * int64(cfg.Layers)
					d, err = op(ctx, func(ctx context.Context) error {
						if phase == "push" {
							return pf.push(ctx, imIngress.Layers, cfg.Parallel)
						}
						return pf.pull(ctx, cfg.Layers, cfg.Parallel)
					})
				case varClusterSvc, varClusterIngress:
					var in clusterResult
					_, err = op(ctx, func(ctx context.Context) error {
						var err error
						in, err = b.clusterOp(ctx, v, phase, imIngress, cfg.Parallel)
						return err
					})
					// Timed inside the pod: kubectl exec's own overhead is not part of the transfer.
					d, bytes = in.d, in.bytes
				case varDisk:
					bytes = layerBytes * int64(cfg.Layers)
					d, err = op(ctx, func(ctx context.Context) error {
						return forEach(len(imIngress.Layers), cfg.Parallel, func(i int) error {
							dst := filepath.Join(copyDir, fmt.Sprintf("layer-%d.tar", i))
							if phase == "push" {
								return copyFileSync(imIngress.Layers[i].Path, dst)
							}
							return hashFile(dst, imIngress.Layers[i].Digest)
						})
					})
				}
				if err != nil {
					// One failed transfer is reported and skipped; more means the path is broken.
					failures++
					t.Errorf("round %d %s %s: %v", r+1, v, phase, err)
					if failures > 3 {
						t.Fatalf("%d failed transfers: giving up", failures)
					}
					continue
				}
				b.record(t, res, dataSample{Round: r + 1, Seq: seq + 1, Variant: v, Op: phase, Bytes: bytes, Seconds: d.Seconds()})
			}
		}
		// The pushed images stay in the registry (later parts run GC over them); the local copies go.
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}
}

// dataMedian is the median MiB/s of one variant and operation, and the sample count.
func (r *dataResult) median(variant, op string) (float64, int) {
	var xs []float64
	for _, s := range r.Samples {
		if s.Variant == variant && s.Op == op {
			xs = append(xs, s.MiBps)
		}
	}
	return median(xs), len(xs)
}
