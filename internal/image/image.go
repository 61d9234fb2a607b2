// Package image builds the project's container images (the manager, the collector,
// the sample plugin, and a pause image for a local kubelet's pod sandboxes) from
// binaries built on the host, without a Docker daemon: the layers are tar streams
// written here and the images are assembled with go-containerregistry, then
// written to a docker-archive tarball (which `ctr images import` accepts) or
// pushed to a registry.
//
// Each program gets an image of its own rather than one image holding all three
// binaries: each image's entrypoint is its program, so a DataSource's collector
// pod template needs no `command`, and a node that runs task pods pulls only the
// collector, not the manager and the plugin.
//
// Every image is two layers: a base layer shared by all of them (/etc/passwd and
// /etc/group with the nonroot user and group 65532, and the host's CA bundle so
// that TLS to real plugins works), and a layer holding the static binary at
// /<name>. The config runs as the numeric user 65532:65532 (so Kubernetes'
// runAsNonRoot check can verify it), and nothing needs a writable root
// filesystem. Timestamps are fixed (SOURCE_DATE_EPOCH, else the Unix epoch), so
// the same binaries give the same digests.
//
// The manifests use the Docker schema 2 media types (what an empty image starts
// with): a docker-archive tarball read back yields the very manifest that was
// written, so the digest printed at build time is also the one a registry holds.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	// User is the numeric user and group every image runs as (distroless' nonroot).
	User = "65532:65532"
	// Source is the org.opencontainers.image.source label of every image.
	Source = "https://github.com/costops/cost-analysis-operator"
	// HostCABundle is copied into the base layer when it exists.
	HostCABundle = "/etc/ssl/certs/ca-certificates.crt"

	nonrootID = 65532
	passwd    = "root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n"
	group     = "root:x:0:\nnonroot:x:65532:\n"
)

// Spec describes one image.
type Spec struct {
	// Name is the program: manager, collector, sample-plugin or pause. It is the
	// image's title label.
	Name string
	// Binary is the path of the built static binary on the host.
	Binary string
	// Entrypoint is where the binary lands in the image, e.g. /collector.
	// Empty means "/" + Name.
	Entrypoint string
	// Ref is the image's reference, e.g. localhost/costops/cost-analysis-collector:dev.
	Ref string
	// Version is the org.opencontainers.image.version label; empty means Ref's tag.
	Version string
	// Arch is the platform's architecture; empty means runtime.GOARCH.
	Arch string
}

// Epoch is the time stamped on every file and on the image config:
// SOURCE_DATE_EPOCH (seconds) when set, else the Unix epoch.
func Epoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// file is one entry of a layer: a directory when data is nil and dir is set.
type file struct {
	name string
	mode int64
	dir  bool
	data []byte
}

// BaseLayer returns the layer shared by every image: /etc/passwd, /etc/group and,
// when the host has it, /etc/ssl/certs/ca-certificates.crt.
func BaseLayer() (v1.Layer, error) {
	return baseLayer(HostCABundle)
}

func baseLayer(caBundle string) (v1.Layer, error) {
	files := []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
	}
	ca, err := os.ReadFile(caBundle)
	switch {
	case err == nil:
		files = append(files,
			file{name: "etc/ssl/", mode: 0o755, dir: true},
			file{name: "etc/ssl/certs/", mode: 0o755, dir: true},
			file{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca})
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	l, err := layer(files)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	return l, nil
}

// layer writes files, owned by root and stamped with Epoch, into a gzipped layer.
func layer(files []file) (v1.Layer, error) {
	mtime, err := Epoch()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:     f.name,
			Mode:     f.mode,
			ModTime:  mtime,
			Typeflag: tar.TypeReg,
			Size:     int64(len(f.data)),
			Uname:    "root",
			Gname:    "root",
			Format:   tar.FormatPAX,
		}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithCompressedCaching)
}

// Build returns the image of spec: base (from BaseLayer) and a layer holding the
// binary at spec.Entrypoint, mode 0755, owned by root.
func Build(spec Spec, base v1.Layer) (v1.Image, error) {
	if spec.Name == "" || spec.Binary == "" {
		return nil, fmt.Errorf("image spec needs a Name and a Binary: %+v", spec)
	}
	entry := spec.Entrypoint
	if entry == "" {
		entry = "/" + spec.Name
	}
	if !path.IsAbs(entry) || strings.HasSuffix(entry, "/") {
		return nil, fmt.Errorf("image %s: entrypoint %q is not an absolute file path", spec.Name, entry)
	}
	version := spec.Version
	if version == "" && spec.Ref != "" {
		ref, err := name.ParseReference(spec.Ref)
		if err != nil {
			return nil, fmt.Errorf("image %s: parse ref: %w", spec.Name, err)
		}
		if t, ok := ref.(name.Tag); ok {
			version = t.TagStr()
		}
	}
	arch := spec.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	created, err := Epoch()
	if err != nil {
		return nil, err
	}

	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("image %s: read binary: %w", spec.Name, err)
	}
	binLayer, err := layer([]file{{name: strings.TrimPrefix(entry, "/"), mode: 0o755, data: bin}})
	if err != nil {
		return nil, fmt.Errorf("image %s: binary layer: %w", spec.Name, err)
	}

	by := "cost-analysis-operator hack/image"
	img, err := mutate.Append(empty.Image,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: by, Comment: "base: passwd, group, CA bundle"}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: v1.Time{Time: created}, CreatedBy: by, Comment: entry}},
	)
	if err != nil {
		return nil, fmt.Errorf("image %s: append layers: %w", spec.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", spec.Name, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: created}
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{entry},
		WorkingDir: "/",
		Env:        []string{"PATH=/"},
		Labels: map[string]string{
			"org.opencontainers.image.title":   spec.Name,
			"org.opencontainers.image.source":  Source,
			"org.opencontainers.image.version": version,
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image %s: set config: %w", spec.Name, err)
	}
	return img, nil
}

// WriteTarball writes refs to path as one docker-archive tarball (what
// `docker load` and `ctr -n k8s.io images import` read). It writes a temporary
// file beside path and renames it, so path is never left half written.
func WriteTarball(path string, refs map[name.Reference]v1.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write tarball %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("tarball %s: %w", path, err)
	}
	return nil
}

// Push writes img to ref and returns ref pinned to the pushed digest. It
// authenticates with authn.DefaultKeychain (docker's config.json and credential
// helpers) unless opts say otherwise. insecure allows plain HTTP to the registry
// (name.Insecure); a registry on loopback (localhost, 127.0.0.1) gets plain HTTP
// anyway.
func Push(ctx context.Context, img v1.Image, ref string, insecure bool, opts ...remote.Option) (name.Digest, error) {
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	r, err := name.ParseReference(ref, nopts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("push: parse ref %q: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("push %s: digest: %w", ref, err)
	}
	ropts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	if err := remote.Write(r, img, ropts...); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", ref, err)
	}
	return r.Context().Digest(d.String()), nil
}
