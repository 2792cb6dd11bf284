//go:build e2e

package kit

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// helloProgram is what the runnable image runs: it prints Greeting and exits.
const helloProgram = `package main

import "fmt"

func main() { fmt.Println("` + Greeting + `") }
`

// Greeting is what a pod of RunnableImage prints.
const Greeting = "hello from the registry-stack registry"

// RunnableImage builds an image that a node can run: one layer with a static Go program at
// /hello (built now, for the machine's architecture), its entrypoint.
func RunnableImage(ctx context.Context, repo, tag string) (*Image, error) {
	dir, err := os.MkdirTemp("", "regstack-hello-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(helloProgram), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o644); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "hello")
	if _, err := RunCmd(ctx, dir, []string{"CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=mod"}, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "."); err != nil {
		return nil, fmt.Errorf("build the hello program: %w", err)
	}
	program, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	if err := tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o755, Size: int64(len(program)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(program); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(tarball.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	im := &Image{Repo: repo, Tag: tag, Layers: []Blob{NewBlob(mediaTypeLayer, gz.Bytes())}}
	cfg, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      time.Now().UTC().Format(time.RFC3339),
		"config":       map[string]any{"Entrypoint": []string{"/hello"}, "User": "65532:65532"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{SHA256Digest(tarball.Bytes())}},
	})
	if err != nil {
		return nil, err
	}
	im.Config = NewBlob(MediaTypeConfig, cfg)
	m := OCIManifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        Descriptor{MediaType: MediaTypeConfig, Digest: im.Config.Digest, Size: len(cfg)},
		Layers:        []Descriptor{{MediaType: mediaTypeLayer, Digest: im.Layers[0].Digest, Size: len(gz.Bytes())}},
	}
	if im.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	im.Digest = SHA256Digest(im.Manifest)
	return im, nil
}
