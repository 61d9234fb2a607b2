// Command image builds the project's container images without a Docker daemon
// (see internal/image) and writes them to tarballs or pushes them. The Makefile's
// `image` and `image-push` targets run it.
//
//	go run ./hack/image build --out bin/image --tag dev --registry localhost/costops
//	go run ./hack/image push  --registry reg.example.com/team --tag v0.1.0 [--insecure]
//
// build compiles the manager (.), the collector (./cmd/collector), the sample
// plugin (./cmd/sample-plugin) and pause (./hack/pause) as static linux binaries
// into <out>/bin/linux_<arch>/, and writes one docker-archive tarball per image,
// <out>/{manager,collector,sample-plugin,pause}.tar, for `ctr -n k8s.io images
// import`. push builds the same way and pushes the three product images (not
// pause), authenticating with docker's config (authn.DefaultKeychain).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/costops/cost-analysis-operator/internal/image"
)

// pauseTag is fixed, whatever --tag says: the kubelet's and containerd's
// configuration name the sandbox image.
const pauseTag = "3.10"

type options struct {
	out, tag, registry, arch            string
	managerRef, collectorRef, pluginRef string
	insecure                            bool
}

// target is one image: its spec, the package its binary is built from, and
// whether it is a product image (pushed) or only for the local node (pause).
type target struct {
	spec    image.Spec
	pkg     string
	product bool
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func usage() error {
	return fmt.Errorf("usage: image build|push [flags]; `image build -h` lists the flags")
}

func run(args []string) error {
	if len(args) == 0 || (args[0] != "build" && args[0] != "push") {
		return usage()
	}
	cmd := args[0]
	fs := flag.NewFlagSet("image "+cmd, flag.ContinueOnError)
	var o options
	fs.StringVar(&o.out, "out", "bin/image", "directory for the tarballs and the built binaries")
	fs.StringVar(&o.tag, "tag", "dev", "tag of the product images (and their org.opencontainers.image.version)")
	fs.StringVar(&o.registry, "registry", "localhost/costops", "registry and path the image names go under")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH of the binaries and the images' platform (linux/<arch>)")
	fs.StringVar(&o.managerRef, "manager-ref", "", "manager image ref (default <registry>/cost-analysis-operator:<tag>)")
	fs.StringVar(&o.collectorRef, "collector-ref", "", "collector image ref (default <registry>/cost-analysis-collector:<tag>)")
	fs.StringVar(&o.pluginRef, "plugin-ref", "", "sample plugin image ref (default <registry>/cost-analysis-sample-plugin:<tag>)")
	if cmd == "push" {
		fs.BoolVar(&o.insecure, "insecure", false, "allow plain HTTP to the registry (loopback registries get it anyway)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	targets := o.targets()
	if cmd == "push" {
		var products []target
		for _, t := range targets {
			if t.product {
				products = append(products, t)
			}
		}
		targets = products
	}
	imgs, err := build(ctx, o, targets)
	if err != nil {
		return err
	}
	if cmd == "build" {
		return writeTarballs(o, targets, imgs)
	}
	for i, t := range targets {
		d, err := image.Push(ctx, imgs[i], t.spec.Ref, o.insecure)
		if err != nil {
			return err
		}
		fmt.Println(d.String())
	}
	return nil
}

func (o options) targets() []target {
	ref := func(override, repo, tag string) string {
		if override != "" {
			return override
		}
		return o.registry + "/" + repo + ":" + tag
	}
	t := func(n, pkg, r string, product bool) target {
		return target{spec: image.Spec{Name: n, Entrypoint: "/" + n, Ref: r, Arch: o.arch}, pkg: pkg, product: product}
	}
	return []target{
		t("manager", ".", ref(o.managerRef, "cost-analysis-operator", o.tag), true),
		t("collector", "./cmd/collector", ref(o.collectorRef, "cost-analysis-collector", o.tag), true),
		t("sample-plugin", "./cmd/sample-plugin", ref(o.pluginRef, "cost-analysis-sample-plugin", o.tag), true),
		t("pause", "./hack/pause", ref("", "pause", pauseTag), false),
	}
}

// build compiles each target's static binary and builds its image on one shared
// base layer.
func build(ctx context.Context, o options, targets []target) ([]v1.Image, error) {
	binDir := filepath.Join(o.out, "bin", "linux_"+o.arch)
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	base, err := image.BaseLayer()
	if err != nil {
		return nil, err
	}
	var imgs []v1.Image
	for _, t := range targets {
		bin := filepath.Join(binDir, t.spec.Name)
		c := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, t.pkg)
		c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.arch)
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %w", t.pkg, err)
		}
		t.spec.Binary = bin
		img, err := image.Build(t.spec, base)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

func writeTarballs(o options, targets []target, imgs []v1.Image) error {
	for i, t := range targets {
		ref, err := name.ParseReference(t.spec.Ref)
		if err != nil {
			return fmt.Errorf("%s: parse ref %q: %w", t.spec.Name, t.spec.Ref, err)
		}
		p := filepath.Join(o.out, t.spec.Name+".tar")
		if err := image.WriteTarball(p, map[name.Reference]v1.Image{ref: imgs[i]}); err != nil {
			return err
		}
		d, err := imgs[i].Digest()
		if err != nil {
			return fmt.Errorf("%s: digest: %w", t.spec.Name, err)
		}
		// The image ID (config digest) is what containerd shows for the image after
		// `ctr images import`, which writes a manifest of its own (another digest).
		id, err := imgs[i].ConfigName()
		if err != nil {
			return fmt.Errorf("%s: image id: %w", t.spec.Name, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		fmt.Printf("%s\n  digest %s  id %s  %.1f MiB  %s\n", t.spec.Ref, d, id, float64(st.Size())/(1<<20), p)
	}
	return nil
}
