//go:build e2e

package kit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// S3Store is the S3 test fixture: a versitygw Deployment (the S3 API over a directory, posix
// backend) in its own namespace, with one bucket and TLS from a CA of the test's own. The product
// never deploys a store; the suite and the bench do, to have one.
type S3Store struct {
	Namespace, Bucket, Prefix string
}

// Root is the directory of the registry's objects in the store's pod: bucket directory + prefix
// (the posix backend keeps every object as a file named by its key).
func (s *S3Store) Root() string { return "/data/buckets/" + s.Bucket + s.Prefix }

// Exec runs a shell script in the store's pod with $ROOT set to Root.
func (s *S3Store) Exec(ctx context.Context, k *Kube, script string) (string, error) {
	out, err := k.Run(ctx, false, "-n", s.Namespace, "exec", "deploy/s3", "-c", "s3", "--", "sh", "-c", "ROOT="+s.Root()+"\n"+script)
	if err != nil {
		return "", fmt.Errorf("exec in the S3 store: %w", err)
	}
	return out, nil
}

// DeployS3Store deploys the store in namespace <stack namespace>-s3, waits until it serves, and
// points f.Settings at it (storage.s3 with prefix, the CA as storage.s3.caBundlePem, a random static
// key). Teardown deletes the namespace.
func (f *Fixture) DeployS3Store(ctx context.Context, prefix string) (*S3Store, error) {
	s := &S3Store{Namespace: f.Settings.Namespace + "-s3", Bucket: "registry-e2e", Prefix: prefix}
	host := "s3." + s.Namespace + ".svc"
	caPEM, certPEM, keyPEM, err := serverCert(host, host+".cluster.local")
	if err != nil {
		return nil, err
	}
	access, err := RandomSuffix()
	if err != nil {
		return nil, err
	}
	secret, err := RandomSuffix()
	if err != nil {
		return nil, err
	}
	accessKey, secretKey := "e2e"+access, "e2e-secret-"+secret+secret
	indent := func(pemText string) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(pemText), "\n", "\n    ")
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Secret
metadata: {name: s3, namespace: %[1]s}
stringData:
  access: %[2]s
  secret: %[3]s
  tls.crt: |
%[4]s
  tls.key: |
%[5]s
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: s3, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: s3}}
  template:
    metadata: {labels: {app: s3}}
    spec:
      enableServiceLinks: false
      securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: s3
        image: ghcr.io/versity/versitygw:v1.8.0
        imagePullPolicy: IfNotPresent
        env:
        - {name: ROOT_ACCESS_KEY_ID, valueFrom: {secretKeyRef: {name: s3, key: access}}}
        - {name: ROOT_SECRET_ACCESS_KEY, valueFrom: {secretKeyRef: {name: s3, key: secret}}}
        - {name: VGW_BACKEND, value: posix}
        - {name: VGW_BACKEND_ARGS, value: "--sidecar /data/meta /data/buckets"}
        - {name: VGW_CERT, value: /tls/tls.crt}
        - {name: VGW_KEY, value: /tls/tls.key}
        command: [sh, -c, "mkdir -p /data/meta /data/buckets/%[6]s && exec /usr/local/bin/docker-entrypoint.sh"]
        ports: [{containerPort: 7070}]
        readinessProbe: {tcpSocket: {port: 7070}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: data, mountPath: /data}, {name: tls, mountPath: /tls, readOnly: true}]
      volumes:
      - {name: data, emptyDir: {}}
      - {name: tls, secret: {secretName: s3, items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]}}
---
apiVersion: v1
kind: Service
metadata: {name: s3, namespace: %[1]s}
spec: {selector: {app: s3}, ports: [{port: 7070, targetPort: 7070}]}
`, s.Namespace, accessKey, secretKey, indent(certPEM), indent(keyPEM), s.Bucket)
	path := filepath.Join(f.Settings.WorkDir, "s3-store.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		return nil, fmt.Errorf("S3 store manifest: %w", err)
	}
	// The store outlives the stack (destroy must leave its objects); teardown deletes it.
	f.FixtureNamespaces = append(f.FixtureNamespaces, s.Namespace)
	if _, err := f.Kube.Run(ctx, false, "apply", "-f", path); err != nil {
		return nil, fmt.Errorf("S3 store fixture: %w", err)
	}
	if _, err := f.Kube.Run(ctx, false, "-n", s.Namespace, "rollout", "status", "deploy/s3", "--timeout=180s"); err != nil {
		return nil, fmt.Errorf("S3 store not ready: %w", err)
	}
	f.Settings.StorageMode = "s3"
	f.Settings.S3 = &S3Target{
		Endpoint: "https://" + host + ":7070", Bucket: s.Bucket, RootDirectory: s.Prefix, CAPEM: caPEM,
		AccessKey: accessKey, SecretKey: secretKey,
	}
	return s, nil
}

// serverCert makes a CA and a server certificate for the names, in PEM.
func serverCert(names ...string) (caPEM, certPEM, keyPEM string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "registry-stack e2e S3 CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", fmt.Errorf("CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", "", fmt.Errorf("CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", fmt.Errorf("server key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return "", "", "", fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", "", fmt.Errorf("server key: %w", err)
	}
	enc := func(typ string, b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})) }
	return enc("CERTIFICATE", caDER), enc("CERTIFICATE", der), enc("PRIVATE KEY", keyDER), nil
}
