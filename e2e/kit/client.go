//go:build e2e

package kit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NewHTTPClient returns a client that reaches https://<hostname> through the ingress address
// (127.0.0.1:port) and trusts only the stack's CA. Dials to any other host are refused, so a
// redirect or Location header pointing elsewhere shows up as an error instead of leaving the machine.
func NewHTTPClient(hostname, ingressAddr string, caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the stack's caCertPem output holds no PEM certificate")
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, fmt.Errorf("dial %s: %w", addr, err)
			}
			if host != hostname || port != "443" {
				return nil, fmt.Errorf("refusing to dial %s: only %s:443 is mapped (to %s)", addr, hostname, ingressAddr)
			}
			return dialer.DialContext(ctx, network, ingressAddr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}, nil
}

// StatusError is an unexpected HTTP status from the registry.
type StatusError struct {
	Method, URL string
	Code        int
	Body        string
}

func (e *StatusError) Error() string {
	body := strings.TrimSpace(e.Body)
	if len(body) > 300 {
		body = body[:300] + "..."
	}
	return fmt.Sprintf("%s %s: HTTP %d %s", e.Method, e.URL, e.Code, body)
}

// HTTPStatus returns the HTTP status code carried by err, or 0.
func HTTPStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// retryable mirrors the retry policy of registry clients (go-containerregistry, docker): transient
// network errors and the status codes a proxy or a restarting backend answers with.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch HTTPStatus(err) {
	case 0:
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	default:
		return false
	}
	// A certificate the stack's CA does not vouch for never heals by retrying.
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, ErrDigestMismatch)
}

// ErrDigestMismatch marks content that did not hash to its digest (e.g. a body cut short).
var ErrDigestMismatch = errors.New("digest mismatch")

// retryBackoff is the wait before the 2nd and 3rd attempt (go-containerregistry uses 1s, x3).
var retryBackoff = []time.Duration{1 * time.Second, 3 * time.Second}

// RegistryClient speaks the OCI distribution API with HTTP basic auth. It is deliberately small
// and explicit (chunked uploads, HEAD-before-upload like docker/crane) so that the test controls
// and can log every request an upload makes.
type RegistryClient struct {
	base      *url.URL // https://<hostname> (or http://127.0.0.1:<port>)
	hc        *http.Client
	user      string
	pass      string
	chunkSize int
	// onRetry, when set, is told about every failed attempt that is retried, so load loops can
	// report failures hidden by retries.
	onRetry func(op string, err error)
	// tokens are bearer tokens (token auth) by user and repository, shared by copies of the
	// client; nil: never kept (every request with a challenge fetches its own).
	tokens *tokenCache
}

// NewRegistryClient returns a client for the registry at baseURL (https://<hostname>, or
// http://127.0.0.1:<port> for a port-forward to one pod) that sends hc's requests with user/pass.
func NewRegistryClient(hc *http.Client, baseURL, user, pass string) (*RegistryClient, error) {
	base, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("registry url: %w", err)
	}
	return &RegistryClient{base: base, hc: hc, user: user, pass: pass, chunkSize: 512 << 10, tokens: newTokenCache()}, nil
}

// WithoutTokenCache returns a copy that fetches a new token for every challenged request, as a
// client starting afresh would (key rotation: every pull then proves the current signing key).
func (c *RegistryClient) WithoutTokenCache() *RegistryClient {
	cc := *c
	cc.tokens = nil
	return &cc
}

// WithRetryHook returns a copy of the client that reports retried failures to hook.
func (c *RegistryClient) WithRetryHook(hook func(op string, err error)) *RegistryClient {
	cc := *c
	cc.onRetry = hook
	return &cc
}

// WithUser returns a copy of the client that sends user and pass; "" sends no credentials.
func (c *RegistryClient) WithUser(user, pass string) *RegistryClient {
	cc := *c
	cc.user, cc.pass = user, pass
	return &cc
}

// WithPassword returns a copy of the client that sends pass (e.g. after a rotation).
func (c *RegistryClient) WithPassword(pass string) *RegistryClient {
	cc := *c
	cc.pass = pass
	return &cc
}

// URL is the absolute URL of path on the registry.
func (c *RegistryClient) URL(path string) string { return c.base.JoinPath(path).String() }

// Resolve turns a Location header into an absolute URL.
func (c *RegistryClient) Resolve(loc string) (string, error) {
	if loc == "" {
		return "", errors.New("registry answered without a Location header")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("location %q: %w", loc, err)
	}
	return c.base.ResolveReference(u).String(), nil
}

// Request is one HTTP call. Credentials are basic auth unless NoAuth; User/Pass override the client's.
// Stream, when set, is the body instead of Body (Size bytes, e.g. a file that is not held in
// memory); it can be read only once, so such a request is never retried.
type Request struct {
	Method, URL string
	Body        []byte
	Stream      io.Reader
	Size        int64
	Header      http.Header
	Expect      []int
	NoAuth      bool
	User, Pass  string
	// Raw sends the request once as it is: no token is fetched on a Bearer challenge (the bench's
	// bare 401 round trip).
	Raw bool
}

// Send performs one request and returns the response with its body unread: the caller reads
// (e.g. through a hash) and closes it. Against token auth it does what docker does: a 401 with a
// Bearer challenge fetches a token for the challenged scope from the realm (with the request's
// credentials, none for NoAuth) and sends the request again with it; a token the realm refuses
// returns the realm's answer. A kept token for the repository goes with the first attempt, so a
// streamed body (which cannot be sent twice) is sent once with it.
func (c *RegistryClient) Send(ctx context.Context, r Request) (*http.Response, error) {
	user, pass := c.user, c.pass
	if r.User != "" {
		user, pass = r.User, r.Pass
	}
	if r.NoAuth || user == "" {
		user, pass, r.NoAuth = "", "", true
	}
	key := tokenKey(user, pass, r.URL)
	kept := c.tokens.get(key)
	resp, err := c.sendOnce(ctx, r, user, pass, kept)
	if err != nil || r.Raw || resp.StatusCode != http.StatusUnauthorized || (r.Stream != nil && r.Body == nil) {
		return resp, err
	}
	challenge, ok := parseBearerChallenge(resp.Header.Get("Www-Authenticate"))
	if !ok {
		if kept == "" {
			return resp, nil
		}
		// Token auth is gone (htpasswd again): forget the token, send the credentials.
		resp.Body.Close()
		c.tokens.put(key, "")
		return c.sendOnce(ctx, r, user, pass, "")
	}
	token, refused, err := c.fetchToken(ctx, challenge, user, pass, r.NoAuth)
	if err != nil || refused != nil {
		resp.Body.Close()
		return refused, err
	}
	resp.Body.Close()
	c.tokens.put(key, token)
	return c.sendOnce(ctx, r, user, pass, token)
}

// sendOnce sends r with the bearer token, or else basic auth unless NoAuth.
func (c *RegistryClient) sendOnce(ctx context.Context, r Request, user, pass, token string) (*http.Response, error) {
	body := r.Stream
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	if r.Stream != nil {
		req.ContentLength = r.Size
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	switch {
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	case !r.NoAuth:
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL, err)
	}
	return resp, nil
}

// Once performs one request and returns the response with its body read. A status not in Expect
// is a *StatusError.
func (c *RegistryClient) Once(ctx context.Context, r Request) (*http.Response, []byte, error) {
	resp, err := c.Send(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading body: %w", r.Method, r.URL, err)
	}
	if len(r.Expect) > 0 && !slices.Contains(r.Expect, resp.StatusCode) {
		return resp, data, &StatusError{Method: r.Method, URL: r.URL, Code: resp.StatusCode, Body: string(data)}
	}
	return resp, data, nil
}

// retry runs fn up to 1+len(retryBackoff) times while it fails with a retryable error.
func (c *RegistryClient) retry(ctx context.Context, op string, fn func() error) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = fn()
		if err == nil || !retryable(err) || attempt >= len(retryBackoff) {
			return err
		}
		if c.onRetry != nil {
			c.onRetry(op, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (while retrying after: %w)", ctx.Err(), err)
		case <-time.After(retryBackoff[attempt]):
		}
	}
}

// do is Once with the retry policy; for idempotent requests.
func (c *RegistryClient) do(ctx context.Context, op string, r Request) (*http.Response, []byte, error) {
	var resp *http.Response
	var data []byte
	err := c.retry(ctx, op, func() error {
		var err error
		resp, data, err = c.Once(ctx, r)
		return err
	})
	return resp, data, err
}

// Ping does GET /v2/ once and returns the status code. With noAuth no credentials are sent.
func (c *RegistryClient) Ping(ctx context.Context, noAuth bool, user, pass string) (int, error) {
	resp, _, err := c.Once(ctx, Request{Method: http.MethodGet, URL: c.URL("/v2/"), NoAuth: noAuth, User: user, Pass: pass})
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// blobExists does HEAD on a blob, as docker and crane do before uploading it.
func (c *RegistryClient) blobExists(ctx context.Context, repo, digest string) (bool, error) {
	resp, _, err := c.do(ctx, "HEAD blob", Request{
		Method: http.MethodHead, URL: c.URL("/v2/" + repo + "/blobs/" + digest),
		Expect: []int{http.StatusOK, http.StatusNotFound},
	})
	if err != nil {
		return false, err
	}
	return resp.StatusCode == http.StatusOK, nil
}

// UploadRecord describes one blob upload session, for matching against the registry logs.
type UploadRecord struct {
	UUID     string
	Digest   string
	Requests int // PATCH + PUT requests that carried the UUID in their URL
}

// uploadBlob uploads data in chunks (POST, PATCH per chunk, PUT with the digest). Each request can
// land on a different replica; that only works if the replicas share storage and http.secret.
// On a retryable failure the whole upload starts again, as docker does.
func (c *RegistryClient) uploadBlob(ctx context.Context, repo string, b Blob) (*UploadRecord, error) {
	var rec *UploadRecord
	err := c.retry(ctx, "upload blob", func() error {
		var err error
		rec, err = c.uploadBlobOnce(ctx, repo, b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("upload %s to %s: %w", b.Digest, repo, err)
	}
	return rec, nil
}

func (c *RegistryClient) uploadBlobOnce(ctx context.Context, repo string, b Blob) (*UploadRecord, error) {
	resp, _, err := c.Once(ctx, Request{
		Method: http.MethodPost, URL: c.URL("/v2/" + repo + "/blobs/uploads/"),
		Expect: []int{http.StatusAccepted},
	})
	if err != nil {
		return nil, err
	}
	rec := &UploadRecord{UUID: resp.Header.Get("Docker-Upload-UUID"), Digest: b.Digest}
	loc, err := c.Resolve(resp.Header.Get("Location"))
	if err != nil {
		return nil, err
	}
	for off := 0; off < len(b.Data); off += c.chunkSize {
		end := min(off+c.chunkSize, len(b.Data))
		h := http.Header{}
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Range", fmt.Sprintf("%d-%d", off, end-1))
		resp, _, err = c.Once(ctx, Request{Method: http.MethodPatch, URL: loc, Body: b.Data[off:end], Header: h, Expect: []int{http.StatusAccepted}})
		if err != nil {
			return nil, err
		}
		rec.Requests++
		if loc, err = c.Resolve(resp.Header.Get("Location")); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(loc)
	if err != nil {
		return nil, fmt.Errorf("upload location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", b.Digest)
	u.RawQuery = q.Encode()
	// No body: the chunks carried all the data; net/http sends Content-Length: 0.
	resp, _, err = c.Once(ctx, Request{Method: http.MethodPut, URL: u.String(), Expect: []int{http.StatusCreated}})
	if err != nil {
		return nil, err
	}
	rec.Requests++
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != b.Digest {
		return nil, fmt.Errorf("upload committed as %s, want %s: %w", got, b.Digest, ErrDigestMismatch)
	}
	return rec, nil
}

// PushResult summarises one image push.
type PushResult struct {
	Uploads []UploadRecord
	Skipped int // blobs the registry said it already had (HEAD 200)
}

// PushImage uploads every blob the registry does not have yet, then puts the manifest under the tag.
// A nil error means the registry acknowledged the push (201 for the manifest).
func (c *RegistryClient) PushImage(ctx context.Context, im *Image) (*PushResult, error) {
	res := &PushResult{}
	for _, b := range im.Blobs() {
		exists, err := c.blobExists(ctx, im.Repo, b.Digest)
		if err != nil {
			return res, fmt.Errorf("push %s: %w", im.Ref(), err)
		}
		if exists {
			res.Skipped++
			continue
		}
		rec, err := c.uploadBlob(ctx, im.Repo, b)
		if err != nil {
			return res, fmt.Errorf("push %s: %w", im.Ref(), err)
		}
		res.Uploads = append(res.Uploads, *rec)
	}
	h := http.Header{}
	h.Set("Content-Type", MediaTypeManifest)
	resp, _, err := c.do(ctx, "PUT manifest", Request{
		Method: http.MethodPut, URL: c.URL("/v2/" + im.Repo + "/manifests/" + im.Tag),
		Body: im.Manifest, Header: h, Expect: []int{http.StatusCreated},
	})
	if err != nil {
		return res, fmt.Errorf("push %s: manifest: %w", im.Ref(), err)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != im.Digest {
		return res, fmt.Errorf("push %s: registry stored manifest as %q, want %s", im.Ref(), got, im.Digest)
	}
	return res, nil
}

// ManifestAccept is the Accept header of manifest requests: every manifest type a registry may answer with.
var ManifestAccept = strings.Join([]string{
	MediaTypeManifest,
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

// PullImage fetches ref (tag or digest) and checks it is exactly want: manifest digest, and every
// blob's digest and bytes. It returns the number of bytes downloaded.
func (c *RegistryClient) PullImage(ctx context.Context, ref string, want *Image) (int, error) {
	h := http.Header{}
	h.Set("Accept", ManifestAccept)
	var total int
	var manifest []byte
	err := c.retry(ctx, "GET manifest", func() error {
		resp, data, err := c.Once(ctx, Request{
			Method: http.MethodGet, URL: c.URL("/v2/" + want.Repo + "/manifests/" + ref),
			Header: h, Expect: []int{http.StatusOK},
		})
		if err != nil {
			return err
		}
		if got := SHA256Digest(data); got != want.Digest {
			return fmt.Errorf("manifest %s:%s hashes to %s, want %s: %w", want.Repo, ref, got, want.Digest, ErrDigestMismatch)
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != want.Digest {
			return fmt.Errorf("manifest %s:%s: Docker-Content-Digest %q, want %s", want.Repo, ref, got, want.Digest)
		}
		manifest = data
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pull %s:%s: %w", want.Repo, ref, err)
	}
	total += len(manifest)
	var m OCIManifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return total, fmt.Errorf("pull %s:%s: decode manifest: %w", want.Repo, ref, err)
	}
	descs := append(append([]Descriptor{}, m.Layers...), m.Config)
	wantBlobs := want.Blobs()
	if len(descs) != len(wantBlobs) {
		return total, fmt.Errorf("pull %s:%s: manifest lists %d blobs, want %d", want.Repo, ref, len(descs), len(wantBlobs))
	}
	for i, d := range descs {
		wb := wantBlobs[i]
		if d.Digest != wb.Digest {
			return total, fmt.Errorf("pull %s:%s: blob %d is %s, want %s", want.Repo, ref, i, d.Digest, wb.Digest)
		}
		n, err := c.fetchBlob(ctx, want.Repo, wb)
		if err != nil {
			return total, fmt.Errorf("pull %s:%s: %w", want.Repo, ref, err)
		}
		total += n
	}
	return total, nil
}

// fetchBlob downloads a blob and compares it with the expected bytes.
func (c *RegistryClient) fetchBlob(ctx context.Context, repo string, want Blob) (int, error) {
	var n int
	err := c.retry(ctx, "GET blob", func() error {
		_, data, err := c.Once(ctx, Request{Method: http.MethodGet, URL: c.URL("/v2/" + repo + "/blobs/" + want.Digest), Expect: []int{http.StatusOK}})
		if err != nil {
			return err
		}
		if got := SHA256Digest(data); got != want.Digest {
			return fmt.Errorf("blob %s: got %d bytes hashing to %s (want %d bytes): %w", want.Digest, len(data), got, len(want.Data), ErrDigestMismatch)
		}
		if !bytes.Equal(data, want.Data) { // cannot differ if the hashes match; kept as the explicit content check
			return fmt.Errorf("blob %s: content differs", want.Digest)
		}
		n = len(data)
		return nil
	})
	return n, err
}

// ManifestStatus returns the status code of HEAD on a manifest (200 present, 404 gone).
func (c *RegistryClient) ManifestStatus(ctx context.Context, repo, ref string) (int, error) {
	h := http.Header{}
	h.Set("Accept", ManifestAccept)
	resp, _, err := c.do(ctx, "HEAD manifest", Request{Method: http.MethodHead, URL: c.URL("/v2/" + repo + "/manifests/" + ref), Header: h})
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// DeleteManifest deletes a manifest by digest (which also removes the tags pointing at it).
func (c *RegistryClient) DeleteManifest(ctx context.Context, repo, digest string) error {
	_, _, err := c.do(ctx, "DELETE manifest", Request{Method: http.MethodDelete, URL: c.URL("/v2/" + repo + "/manifests/" + digest), Expect: []int{http.StatusAccepted}})
	if err != nil {
		return fmt.Errorf("delete %s@%s: %w", repo, digest, err)
	}
	return nil
}

// Tags lists the tags of a repository.
func (c *RegistryClient) Tags(ctx context.Context, repo string) ([]string, error) {
	_, data, err := c.do(ctx, "GET tags", Request{Method: http.MethodGet, URL: c.URL("/v2/" + repo + "/tags/list"), Expect: []int{http.StatusOK}})
	if err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(data, &tl); err != nil {
		return nil, fmt.Errorf("tags of %s: %w", repo, err)
	}
	return tl.Tags, nil
}

// MiB formats a byte count.
func MiB(n int) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }
