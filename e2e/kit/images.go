//go:build e2e

package kit

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
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Blob is content-addressed data as stored in the registry.
type Blob struct {
	MediaType string
	Digest    string // sha256:<hex>
	Data      []byte
}

// NewBlob wraps data with its digest.
func NewBlob(mediaType string, data []byte) Blob {
	return Blob{MediaType: mediaType, Digest: SHA256Digest(data), Data: data}
}

// Hex returns the digest without the algorithm prefix.
func (b Blob) Hex() string { return strings.TrimPrefix(b.Digest, "sha256:") }

// SHA256Digest is the content digest of data, sha256:<hex>.
func SHA256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Image is a complete image built in memory: random layers (so no two images share a blob), a
// config naming their diff IDs, and an OCI manifest. Everything needed to verify a pull byte by
// byte is kept.
type Image struct {
	Repo     string
	Tag      string
	Config   Blob
	Layers   []Blob
	Manifest []byte
	Digest   string // digest of Manifest
}

// Ref is repo:tag.
func (im *Image) Ref() string { return im.Repo + ":" + im.Tag }

// Blobs returns the layers and the config, in upload order.
func (im *Image) Blobs() []Blob { return append(append([]Blob{}, im.Layers...), im.Config) }

// Size is the number of bytes the blobs take in the registry.
func (im *Image) Size() int {
	n := 0
	for _, b := range im.Blobs() {
		n += len(b.Data)
	}
	return n
}

// Descriptor points a manifest at one blob.
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int    `json:"size"`
}

// OCIManifest is an OCI image manifest.
type OCIManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// RandomImage builds an image of `layers` layers, each a gzipped tar holding one file of layerBytes
// random bytes (random data does not compress, so the upload really is that big).
func RandomImage(repo, tag string, layers, layerBytes int) (*Image, error) {
	return RandomImageAt(repo, tag, layers, layerBytes, time.Now())
}

// RandomImageAt is RandomImage whose config says it was created at created (what retention
// policies date an image by).
func RandomImageAt(repo, tag string, layers, layerBytes int, created time.Time) (*Image, error) {
	im := &Image{Repo: repo, Tag: tag}
	var diffIDs []string
	for i := range layers {
		tarball, gz, err := randomLayer(fmt.Sprintf("e2e/layer-%d.bin", i), layerBytes)
		if err != nil {
			return nil, err
		}
		diffIDs = append(diffIDs, SHA256Digest(tarball))
		im.Layers = append(im.Layers, NewBlob(mediaTypeLayer, gz))
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      created.UTC().Format(time.RFC3339),
		"config":       map[string]any{"Labels": map[string]string{"org.opencontainers.image.title": "regstack-e2e " + repo + ":" + tag}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	im.Config = NewBlob(MediaTypeConfig, cfg)
	m := OCIManifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        Descriptor{MediaType: MediaTypeConfig, Digest: im.Config.Digest, Size: len(cfg)},
		Annotations:   map[string]string{"org.opencontainers.image.ref.name": tag},
	}
	for _, l := range im.Layers {
		m.Layers = append(m.Layers, Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: len(l.Data)})
	}
	im.Manifest, err = json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("image manifest: %w", err)
	}
	im.Digest = SHA256Digest(im.Manifest)
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
