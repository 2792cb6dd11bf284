//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// OCI media types of the test images.
const (
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// blob is content-addressed data as stored in the registry.
type blob struct {
	MediaType string
	Digest    string // sha256:<hex>
	Data      []byte
}

func newBlob(mediaType string, data []byte) blob {
	return blob{MediaType: mediaType, Digest: sha256Digest(data), Data: data}
}

// hex returns the digest without the algorithm prefix.
func (b blob) hex() string { return strings.TrimPrefix(b.Digest, "sha256:") }

func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// testImage is a complete image built in memory: random layers (so no two images share a blob), a
// config naming their diff IDs, and an OCI manifest. Everything needed to verify a pull byte by
// byte is kept.
type testImage struct {
	Repo     string
	Tag      string
	Config   blob
	Layers   []blob
	Manifest []byte
	Digest   string // digest of Manifest
}

// Ref is repo:tag.
func (im *testImage) Ref() string { return im.Repo + ":" + im.Tag }

// Blobs returns the layers and the config, in upload order.
func (im *testImage) Blobs() []blob { return append(append([]blob{}, im.Layers...), im.Config) }

// Size is the number of bytes the blobs take in the registry.
func (im *testImage) Size() int {
	n := 0
	for _, b := range im.Blobs() {
		n += len(b.Data)
	}
	return n
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
}

type ociManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// randomImage builds an image of `layers` layers, each a gzipped tar holding one file of layerBytes
// random bytes (random data does not compress, so the upload really is that big).
func randomImage(repo, tag string, layers, layerBytes int) (*testImage, error) {
	im := &testImage{Repo: repo, Tag: tag}
	var diffIDs []string
	for i := range layers {
		tarball, gz, err := randomLayer(fmt.Sprintf("e2e/layer-%d.bin", i), layerBytes)
		if err != nil {
			return nil, err
		}
		diffIDs = append(diffIDs, sha256Digest(tarball))
		im.Layers = append(im.Layers, newBlob(mediaTypeLayer, gz))
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Now().UTC().Format(time.RFC3339),
		"config":       map[string]any{"Labels": map[string]string{"org.opencontainers.image.title": "regstack-e2e " + repo + ":" + tag}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	im.Config = newBlob(mediaTypeConfig, cfg)
	m := ociManifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        descriptor{MediaType: mediaTypeConfig, Digest: im.Config.Digest, Size: len(cfg)},
		Annotations:   map[string]string{"org.opencontainers.image.ref.name": tag},
	}
	for _, l := range im.Layers {
		m.Layers = append(m.Layers, descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: len(l.Data)})
	}
	im.Manifest, err = json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	im.Digest = sha256Digest(im.Manifest)
	return im, nil
}

// randomLayer returns a tar with one file of random content and its gzip compression.
func randomLayer(name string, size int) (tarball, gz []byte, err error) {
	content := make([]byte, size)
	if _, err := rand.Read(content); err != nil {
		return nil, nil, fmt.Errorf("random layer content: %w", err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(size), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, nil, fmt.Errorf("tar header: %w", err)
	}
	if _, err := tw.Write(content); err != nil {
		return nil, nil, fmt.Errorf("tar content: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, nil, fmt.Errorf("tar close: %w", err)
	}
	var gb bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gb, gzip.BestSpeed)
	if err != nil {
		return nil, nil, fmt.Errorf("gzip: %w", err)
	}
	if _, err := zw.Write(tb.Bytes()); err != nil {
		return nil, nil, fmt.Errorf("gzip write: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("gzip close: %w", err)
	}
	return tb.Bytes(), gb.Bytes(), nil
}
