//go:build e2e

// Command benchpod is TestBench's registry client inside the cluster: it pushes or pulls blobs
// like the host-side client (HEAD, POST, one streamed PATCH, PUT; GET hashed with sha256), without
// the kubectl port-forward in between, and prints the transfer time as JSON. TestBench builds it
// (CGO_ENABLED=0), copies it into its helper pod and runs it with `kubectl exec -i`; the
// credentials ("user:pass") come in on stdin.
//
//	benchpod -mode push -base http://registry.ns.svc.cluster.local:5000 -repo r -layers 4 -layer-bytes N -parallel 4
//	benchpod -mode pull -base https://registry.e2e.test -connect traefik.ingress.svc.cluster.local:443 -ca-b64 <base64 PEM> -repo r -blobs d1:size1,d2:size2
package main

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type client struct {
	base       *url.URL
	hc         *http.Client
	user, pass string
	// redirected counts blob downloads served from another host (the object store).
	redirected atomic.Int64
}

func main() {
	mode := flag.String("mode", "", "push or pull")
	base := flag.String("base", "", "registry base URL (http, or https with -ca-b64)")
	caB64 := flag.String("ca-b64", "", "https: base64 of the PEM CA certificate to trust (the stack's caCertPem)")
	connect := flag.String("connect", "", "host:port to connect to instead of the base URL's host (ingress controller)")
	storeCAB64 := flag.String("store-ca-b64", "", "base64 of the PEM CA of the object store that blob downloads are redirected to (storage.s3.redirect)")
	repo := flag.String("repo", "", "repository")
	layers := flag.Int("layers", 4, "push: number of layers")
	layerBytes := flag.Int64("layer-bytes", 1<<20, "push: bytes per layer")
	parallel := flag.Int("parallel", 4, "blobs moved at once")
	blobs := flag.String("blobs", "", "pull: digest:size,...")
	timeout := flag.Duration("timeout", 10*time.Minute, "overall timeout")
	flag.Parse()
	if err := run(*mode, *base, *connect, *caB64, *storeCAB64, *repo, *layers, *layerBytes, *parallel, *blobs, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "benchpod:", err)
		os.Exit(1)
	}
}

func run(mode, base, connect, caB64, storeCAB64, repo string, layers int, layerBytes int64, parallel int, blobs string, timeout time.Duration) error {
	creds, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read credentials: %w", err)
	}
	user, pass, ok := strings.Cut(strings.TrimSpace(creds), ":")
	if !ok {
		return errors.New("stdin: want user:pass")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || repo == "" {
		return fmt.Errorf("-base %q (http or https URL) and -repo are required", base)
	}
	target := u.Host
	if !strings.Contains(target, ":") {
		target += map[string]string{"http": ":80", "https": ":443"}[u.Scheme]
	}
	// One pool for the registry's CA and the store's: TLS names come from each request's URL.
	pool := x509.NewCertPool()
	for _, c := range []struct{ flag, b64 string }{{"-ca-b64", caB64}, {"-store-ca-b64", storeCAB64}} {
		if c.b64 == "" {
			continue
		}
		pemCA, err := base64.StdEncoding.DecodeString(c.b64)
		if err != nil || !pool.AppendCertsFromPEM(pemCA) {
			return fmt.Errorf("%s must be the base64 of a PEM CA certificate", c.flag)
		}
	}
	if u.Scheme == "https" && caB64 == "" {
		return errors.New("https: -ca-b64 is required")
	}
	tlsConfig := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if connect != "" {
		target = connect
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	registryAddr := u.Host
	if u.Port() == "" {
		registryAddr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	tr := &http.Transport{
		// Requests to the registry's host go to the one target, whatever its name resolves to;
		// a redirect to the object store (storage.s3.redirect) dials the store by its own name.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == registryAddr {
				return dialer.DialContext(ctx, network, target)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsConfig,
		MaxIdleConnsPerHost: 16,
	}
	c := &client{base: u, hc: &http.Client{Transport: tr}, user: user, pass: pass}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	var total int64
	var elapsed time.Duration
	switch mode {
	case "push":
		data := make([][]byte, layers)
		digests := make([]string, layers)
		var seed [32]byte
		if _, err := crand.Read(seed[:]); err != nil {
			return err
		}
		rng := rand.NewChaCha8(seed)
		for i := range data {
			data[i] = make([]byte, layerBytes)
			if _, err := rng.Read(data[i]); err != nil {
				return err
			}
			sum := sha256.Sum256(data[i])
			digests[i] = "sha256:" + hex.EncodeToString(sum[:])
			total += layerBytes
		}
		start := time.Now()
		err = forEach(layers, parallel, func(i int) error { return c.push(ctx, repo, digests[i], data[i]) })
		elapsed = time.Since(start)
	case "pull":
		type want struct {
			digest string
			size   int64
		}
		var ws []want
		for _, b := range strings.Split(blobs, ",") {
			d, s, ok := strings.Cut(b, ":sz=")
			n, perr := strconv.ParseInt(s, 10, 64)
			if !ok || perr != nil {
				return fmt.Errorf("-blobs: %q is not digest:sz=size", b)
			}
			ws = append(ws, want{d, n})
			total += n
		}
		start := time.Now()
		err = forEach(len(ws), parallel, func(i int) error { return c.pull(ctx, repo, ws[i].digest, ws[i].size) })
		elapsed = time.Since(start)
	default:
		return fmt.Errorf("-mode %q: want push or pull", mode)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"seconds": elapsed.Seconds(), "bytes": total, "redirected": c.redirected.Load()})
}

func (c *client) do(ctx context.Context, method, u string, body io.Reader, size int64, expect int) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode != expect {
		return nil, fmt.Errorf("%s %s: HTTP %d, want %d: %.300s", method, u, resp.StatusCode, expect, msg)
	}
	return resp, nil
}

func (c *client) resolve(loc string) (string, error) {
	l, err := url.Parse(loc)
	if err != nil || loc == "" {
		return "", fmt.Errorf("location %q: %v", loc, err)
	}
	return c.base.ResolveReference(l).String(), nil
}

func (c *client) push(ctx context.Context, repo, digest string, data []byte) error {
	if _, err := c.do(ctx, http.MethodHead, c.base.JoinPath("/v2", repo, "blobs", digest).String(), nil, 0, http.StatusNotFound); err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, c.base.JoinPath("/v2", repo, "blobs", "uploads").String()+"/", nil, 0, http.StatusAccepted)
	if err != nil {
		return err
	}
	loc, err := c.resolve(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	if resp, err = c.do(ctx, http.MethodPatch, loc, bytes.NewReader(data), int64(len(data)), http.StatusAccepted); err != nil {
		return err
	}
	if loc, err = c.resolve(resp.Header.Get("Location")); err != nil {
		return err
	}
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	_, err = c.do(ctx, http.MethodPut, u.String(), nil, 0, http.StatusCreated)
	return err
}

func (c *client) pull(ctx context.Context, repo, digest string, size int64) error {
	u := c.base.JoinPath("/v2", repo, "blobs", digest).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if resp.Request.URL.Host != c.base.Host {
		c.redirected.Add(1)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != size || got != digest {
		return fmt.Errorf("GET %s: %d bytes hashing to %s, want %d bytes", u, n, got, size)
	}
	return nil
}

func forEach(n, parallel int, fn func(i int) error) error {
	sem := make(chan struct{}, max(1, parallel))
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
