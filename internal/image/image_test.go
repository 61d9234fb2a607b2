package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testBinary writes a small file standing in for a built binary.
func testBinary(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t *testing.T, spec Spec) v1.Image {
	t.Helper()
	base, err := BaseLayer()
	if err != nil {
		t.Fatalf("BaseLayer: %v", err)
	}
	img, err := Build(spec, base)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return img
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return d
}

// layerFiles reads a layer's tar into name -> (header, content).
func layerFiles(t *testing.T, l v1.Layer) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs[h.Name], data[h.Name] = h, b
	}
	return hs, data
}

func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		spec        Spec
		wantEntry   string
		wantVersion string
	}{
		{Spec{Name: "manager", Ref: "localhost/costops/cost-analysis-operator:dev"}, "/manager", "dev"},
		{Spec{Name: "collector", Entrypoint: "/collector", Ref: "localhost/costops/cost-analysis-collector:v0.1.0"}, "/collector", "v0.1.0"},
		{Spec{Name: "sample-plugin", Ref: "localhost/costops/cost-analysis-sample-plugin:dev", Version: "1.2.3"}, "/sample-plugin", "1.2.3"},
		{Spec{Name: "pause", Ref: "localhost/costops/pause:3.10"}, "/pause", "3.10"},
	} {
		t.Run(tc.spec.Name, func(t *testing.T) {
			tc.spec.Binary = testBinary(t, "#!binary "+tc.spec.Name+"\n")
			img := build(t, tc.spec)

			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cf.Config
			if c.User != "65532:65532" {
				t.Errorf("User = %q, want 65532:65532", c.User)
			}
			if len(c.Entrypoint) != 1 || c.Entrypoint[0] != tc.wantEntry {
				t.Errorf("Entrypoint = %q, want [%s]", c.Entrypoint, tc.wantEntry)
			}
			if c.WorkingDir != "/" || len(c.Env) != 1 || c.Env[0] != "PATH=/" {
				t.Errorf("WorkingDir %q Env %q, want / and [PATH=/]", c.WorkingDir, c.Env)
			}
			for k, want := range map[string]string{
				"org.opencontainers.image.title":   tc.spec.Name,
				"org.opencontainers.image.source":  "https://github.com/costops/cost-analysis-operator",
				"org.opencontainers.image.version": tc.wantVersion,
			} {
				if got := c.Labels[k]; got != want {
					t.Errorf("label %s = %q, want %q", k, got, want)
				}
			}
			if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
				t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
			}
			if !cf.Created.Equal(time.Unix(0, 0)) {
				t.Errorf("Created = %v, want the epoch", cf.Created)
			}

			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 2 {
				t.Fatalf("%d layers, want 2", len(layers))
			}
			hs, data := layerFiles(t, layers[0])
			if !strings.Contains(string(data["etc/passwd"]), "nonroot:x:65532:65532:") {
				t.Errorf("/etc/passwd has no uid 65532:\n%s", data["etc/passwd"])
			}
			if !strings.Contains(string(data["etc/group"]), "nonroot:x:65532:") {
				t.Errorf("/etc/group has no gid 65532:\n%s", data["etc/group"])
			}
			if _, err := os.Stat(HostCABundle); err == nil && len(data["etc/ssl/certs/ca-certificates.crt"]) == 0 {
				t.Errorf("host has %s but the base layer has no CA bundle", HostCABundle)
			}
			for n, h := range hs {
				if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 {
					t.Errorf("base %s: mtime %v uid %d gid %d, want epoch, 0, 0", n, h.ModTime, h.Uid, h.Gid)
				}
			}

			hs, data = layerFiles(t, layers[1])
			bin := strings.TrimPrefix(tc.wantEntry, "/")
			h, ok := hs[bin]
			if !ok || len(hs) != 1 {
				t.Fatalf("binary layer holds %v, want only %s", hs, bin)
			}
			if h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || h.Typeflag != tar.TypeReg {
				t.Errorf("%s: mode %o uid %d gid %d type %c, want 0755 root regular file", bin, h.Mode, h.Uid, h.Gid, h.Typeflag)
			}
			if string(data[bin]) != "#!binary "+tc.spec.Name+"\n" {
				t.Errorf("%s content = %q", bin, data[bin])
			}

			// Same inputs, same digest, even from a fresh base layer.
			if d1, d2 := digest(t, img), digest(t, build(t, tc.spec)); d1 != d2 {
				t.Errorf("two builds differ: %s vs %s", d1, d2)
			}
		})
	}
}

func TestBuildDeterminism(t *testing.T) {
	bin := testBinary(t, "binary")
	spec := Spec{Name: "collector", Binary: bin, Ref: "localhost/costops/cost-analysis-collector:dev"}
	d := digest(t, build(t, spec))
	for _, tc := range []struct {
		name  string
		spec  Spec
		epoch string
		same  bool
	}{
		{"same inputs", spec, "", true},
		{"explicit epoch 0", spec, "0", true},
		{"other SOURCE_DATE_EPOCH", spec, "1700000000", false},
		{"other binary", Spec{Name: "collector", Binary: testBinary(t, "other"), Ref: spec.Ref}, "", false},
		{"other tag", Spec{Name: "collector", Binary: bin, Ref: "localhost/costops/cost-analysis-collector:v1"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.epoch)
			if got := digest(t, build(t, tc.spec)); (got == d) != tc.same {
				t.Errorf("digest %s vs %s: same = %v, want %v", got, d, got == d, tc.same)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	base, err := BaseLayer()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"no name", Spec{Binary: "x"}},
		{"no binary", Spec{Name: "manager"}},
		{"missing binary", Spec{Name: "manager", Binary: filepath.Join(t.TempDir(), "nope")}},
		{"relative entrypoint", Spec{Name: "manager", Binary: testBinary(t, "x"), Entrypoint: "manager"}},
		{"bad ref", Spec{Name: "manager", Binary: testBinary(t, "x"), Ref: "UPPER/Case::x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Build(tc.spec, base); err == nil {
				t.Error("Build succeeded, want an error")
			}
		})
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := BaseLayer(); err == nil {
		t.Error("BaseLayer with a bad SOURCE_DATE_EPOCH succeeded")
	}
}

func TestBaseLayerWithoutCABundle(t *testing.T) {
	l, err := baseLayer(filepath.Join(t.TempDir(), "absent.crt"))
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := layerFiles(t, l)
	if _, ok := hs["etc/ssl/certs/ca-certificates.crt"]; ok || len(hs) != 3 {
		t.Errorf("base layer without a host CA bundle holds %v, want etc/, passwd, group", hs)
	}
}

func TestPush(t *testing.T) {
	// httptest listens on 127.0.0.1, so the registry is plain HTTP on loopback.
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("registry at %s, want 127.0.0.1", host)
	}

	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		ref      string
		insecure bool
	}{
		{"collector on loopback", host + "/costops/cost-analysis-collector:test", false},
		{"plugin with insecure", host + "/costops/cost-analysis-sample-plugin:test", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := build(t, Spec{Name: "collector", Binary: testBinary(t, tc.name), Ref: tc.ref})
			pushed, err := Push(ctx, img, tc.ref, tc.insecure)
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			want := digest(t, img)
			if pushed.DigestStr() != want.String() {
				t.Errorf("Push returned %s, want digest %s", pushed, want)
			}
			for _, r := range []string{tc.ref, pushed.String()} {
				ref, err := name.ParseReference(r)
				if err != nil {
					t.Fatal(err)
				}
				got, err := remote.Image(ref, remote.WithContext(ctx))
				if err != nil {
					t.Fatalf("pull %s: %v", r, err)
				}
				if d := digest(t, got); d != want {
					t.Errorf("pulled %s: digest %s, want %s", r, d, want)
				}
			}
		})
	}

	if _, err := Push(ctx, build(t, Spec{Name: "collector", Binary: testBinary(t, "x")}), "not a ref", false); err == nil {
		t.Error("Push to a bad ref succeeded")
	}
}

func TestWriteTarball(t *testing.T) {
	specs := []Spec{
		{Name: "collector", Ref: "localhost/costops/cost-analysis-collector:dev"},
		{Name: "pause", Ref: "localhost/costops/pause:3.10"},
	}
	refs := map[name.Reference]v1.Image{}
	want := map[string]v1.Hash{}
	for _, s := range specs {
		s.Binary = testBinary(t, s.Name)
		img := build(t, s)
		ref, err := name.ParseReference(s.Ref)
		if err != nil {
			t.Fatal(err)
		}
		refs[ref] = img
		want[s.Ref] = digest(t, img)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		refs []string
	}{
		{"one image", []string{specs[0].Ref}},
		{"two images", []string{specs[0].Ref, specs[1].Ref}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[name.Reference]v1.Image{}
			for ref, img := range refs {
				for _, r := range tc.refs {
					if ref.String() == r {
						m[ref] = img
					}
				}
			}
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"), "images.tar")
			if err := WriteTarball(p, m); err != nil {
				t.Fatalf("WriteTarball: %v", err)
			}
			if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
				t.Errorf("temporary file left behind: %v", err)
			}
			for _, r := range tc.refs {
				tag, err := name.NewTag(r)
				if err != nil {
					t.Fatal(err)
				}
				got, err := tarball.ImageFromPath(p, &tag)
				if err != nil {
					t.Fatalf("read %s from %s: %v", r, p, err)
				}
				if d := digest(t, got); d != want[r] {
					t.Errorf("%s read back: digest %s, want %s", r, d, want[r])
				}
			}
		})
	}
}
