// Package deploy loads clozeloop's deployment files the way their tools
// read them, so that tests can check them without a container engine or a
// cluster: the Compose files in deploy/compose with compose-go (the Compose
// specification's loader, which validates against the specification's JSON
// schema) and the kustomizations in deploy/k8s with kustomize's krusty,
// every object decoded strictly (an unknown field is an error) into the
// Kubernetes API types, or for KEDA's objects into ScaledObject and
// TriggerAuthentication.
//
// Invocations lists every clozeloop command the files run, for the CLI's
// test that checks each flag and variable against the real commands.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Paths of the deployment files, relative to the repository root.
const (
	ComposeDir     = "deploy/compose"
	ComposeFile    = "compose.yaml"
	ComposeGPUFile = "compose.gpu.yaml"
	// ComposeEnvExample holds the placeholders of compose's .env.
	ComposeEnvExample = ".env.example"
	K8sDir            = "deploy/k8s"
	K8sBase           = "base"
	K8sOverlayExample = "overlays/example"
	// OverlaySecretsExample is copied to "secrets" in the overlay when it is
	// built for a test (the real folder is git-ignored).
	OverlaySecretsExample = "secrets.example"
)

// ComposeVariants are the file sets compose is run with: plain, and with
// the GPU override.
var ComposeVariants = [][]string{{ComposeFile}, {ComposeFile, ComposeGPUFile}}

// ReadEnvFile reads a compose .env file.
func ReadEnvFile(name string) (map[string]string, error) {
	env, err := dotenv.Read(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return env, nil
}

// LoadCompose loads and validates the compose files in dir (later files
// override earlier ones, as with docker compose -f a -f b) with env as the
// environment for interpolation. Validation against the Compose
// specification's schema is always on.
func LoadCompose(ctx context.Context, dir string, files []string, env map[string]string) (*types.Project, error) {
	details := types.ConfigDetails{WorkingDir: dir, Environment: env}
	for _, f := range files {
		details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: filepath.Join(dir, f)})
	}
	p, err := loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SkipValidation = false
		o.SkipConsistencyCheck = false
		o.SkipInterpolation = false
	})
	if err != nil {
		return nil, fmt.Errorf("load compose %s: %w", strings.Join(files, " + "), err)
	}
	return p, nil
}

// CopyToMemFS copies the folder dir of the real file system into a new
// in-memory file system under root, so a test can change files before
// building.
func CopyToMemFS(dir, root string) (filesys.FileSystem, error) {
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		target := path.Join(root, filepath.ToSlash(rel))
		if d.IsDir() {
			return mem.MkdirAll(target)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(target, b)
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s into memory: %w", dir, err)
	}
	return mem, nil
}

// K8sFS is deploy/k8s of the repository at root in memory, under /k8s, with
// the example overlay's secrets folder filled from its placeholders.
func K8sFS(root string) (filesys.FileSystem, error) {
	mem, err := CopyToMemFS(filepath.Join(root, K8sDir), "/k8s")
	if err != nil {
		return nil, err
	}
	src := path.Join("/k8s", K8sOverlayExample, OverlaySecretsExample)
	dst := path.Join("/k8s", K8sOverlayExample, "secrets")
	names, err := mem.ReadDir(src)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", src, err)
	}
	if err := mem.MkdirAll(dst); err != nil {
		return nil, err
	}
	for _, n := range names {
		b, err := mem.ReadFile(path.Join(src, n))
		if err != nil {
			return nil, err
		}
		if err := mem.WriteFile(path.Join(dst, n), b); err != nil {
			return nil, err
		}
	}
	return mem, nil
}

// Objects is the decoded output of a kustomization.
type Objects struct {
	Deployments     []appsv1.Deployment
	Services        []corev1.Service
	ConfigMaps      []corev1.ConfigMap
	Secrets         []corev1.Secret
	Namespaces      []corev1.Namespace
	Ingresses       []networkingv1.Ingress
	NetworkPolicies []networkingv1.NetworkPolicy
	ScaledObjects   []ScaledObject
	TriggerAuths    []TriggerAuthentication
}

// Build runs the kustomization in dir of fsys (as kustomize build does) and
// decodes every object strictly with DecodeObject.
func Build(fsys filesys.FileSystem, dir string) (*Objects, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	objs := &Objects{}
	var errs []error
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.CurId(), err))
			continue
		}
		if err := objs.add(b); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.CurId(), err))
		}
	}
	return objs, errors.Join(errs...)
}

// DecodeObject decodes one Kubernetes object (YAML or JSON) of a kind
// clozeloop deploys into v, failing on fields the type does not have and on
// duplicate fields.
func DecodeObject(b []byte, v any) error {
	if err := yaml.UnmarshalStrict(b, v); err != nil {
		return fmt.Errorf("strict decode: %w", err)
	}
	return nil
}

// kinds are the API versions and kinds the deployment files may contain.
var kinds = map[string]string{
	"Deployment":            "apps/v1",
	"Service":               "v1",
	"ConfigMap":             "v1",
	"Secret":                "v1",
	"Namespace":             "v1",
	"Ingress":               "networking.k8s.io/v1",
	"NetworkPolicy":         "networking.k8s.io/v1",
	"ScaledObject":          KEDAAPIVersion,
	"TriggerAuthentication": KEDAAPIVersion,
}

func (o *Objects) add(b []byte) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(b, &head); err != nil {
		return fmt.Errorf("decode kind: %w", err)
	}
	want, ok := kinds[head.Kind]
	if !ok {
		return fmt.Errorf("kind %q is not one the deployment files use (add it to deploy.kinds with its API type)", head.Kind)
	}
	if head.APIVersion != want {
		return fmt.Errorf("%s has apiVersion %q, want %q", head.Kind, head.APIVersion, want)
	}
	switch head.Kind {
	case "Deployment":
		return decodeInto(b, &o.Deployments)
	case "Service":
		return decodeInto(b, &o.Services)
	case "ConfigMap":
		return decodeInto(b, &o.ConfigMaps)
	case "Secret":
		return decodeInto(b, &o.Secrets)
	case "Namespace":
		return decodeInto(b, &o.Namespaces)
	case "Ingress":
		return decodeInto(b, &o.Ingresses)
	case "NetworkPolicy":
		return decodeInto(b, &o.NetworkPolicies)
	case "ScaledObject":
		return decodeInto(b, &o.ScaledObjects)
	default: // TriggerAuthentication
		return decodeInto(b, &o.TriggerAuths)
	}
}

func decodeInto[T any](b []byte, list *[]T) error {
	var v T
	if err := DecodeObject(b, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// Deployment returns the Deployment called name, or nil.
func (o *Objects) Deployment(name string) *appsv1.Deployment {
	for i := range o.Deployments {
		if o.Deployments[i].Name == name {
			return &o.Deployments[i]
		}
	}
	return nil
}

// Secret returns the Secret called name, or nil.
func (o *Objects) Secret(name string) *corev1.Secret {
	for i := range o.Secrets {
		if o.Secrets[i].Name == name {
			return &o.Secrets[i]
		}
	}
	return nil
}

// ConfigMap returns the ConfigMap called name, or nil.
func (o *Objects) ConfigMap(name string) *corev1.ConfigMap {
	for i := range o.ConfigMaps {
		if o.ConfigMaps[i].Name == name {
			return &o.ConfigMaps[i]
		}
	}
	return nil
}

// SecretKeys is the set of keys of a Secret (data and stringData).
func SecretKeys(s *corev1.Secret) map[string]bool {
	keys := map[string]bool{}
	for k := range s.Data {
		keys[k] = true
	}
	for k := range s.StringData {
		keys[k] = true
	}
	return keys
}

// ContainerEnv is the names of the variables a container's environment
// gets: env, and the keys of the ConfigMaps and Secrets of envFrom (those
// not in objs are reported as missing).
func (o *Objects) ContainerEnv(c corev1.Container) (names []string, missing []string) {
	seen := map[string]bool{}
	addName := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm := o.ConfigMap(src.ConfigMapRef.Name)
			if cm == nil {
				missing = append(missing, "ConfigMap "+src.ConfigMapRef.Name)
				continue
			}
			for k := range cm.Data {
				addName(src.Prefix + k)
			}
		case src.SecretRef != nil:
			s := o.Secret(src.SecretRef.Name)
			if s == nil {
				missing = append(missing, "Secret "+src.SecretRef.Name)
				continue
			}
			for k := range SecretKeys(s) {
				addName(src.Prefix + k)
			}
		}
	}
	for _, e := range c.Env {
		addName(e.Name)
	}
	sort.Strings(names)
	return names, missing
}

// An Invocation is one clozeloop command a deployment file runs.
type Invocation struct {
	// Source names the file and the service or container.
	Source string
	// Args are the arguments after the image's entrypoint (clozeloop).
	Args []string
	// Env are the names of the variables set in its environment.
	Env []string
}

// IsClozeloopImage reports whether image is one of clozeloop's images
// (deploy/docker): a repository named clozeloop, clozeloop-cpu or
// clozeloop-cuda, with any registry and tag.
func IsClozeloopImage(image string) bool {
	repo := image
	if i := strings.LastIndex(repo, "/"); i >= 0 {
		repo = repo[i+1:]
	}
	if i := strings.IndexAny(repo, ":@"); i >= 0 {
		repo = repo[:i]
	}
	return repo == "clozeloop" || repo == "clozeloop-cpu" || repo == "clozeloop-cuda"
}

// Invocations lists the clozeloop commands of every compose variant (with
// .env.example's placeholders) and of the kustomize base and example
// overlay of the repository at root.
func Invocations(ctx context.Context, root string) ([]Invocation, error) {
	var out []Invocation
	dir := filepath.Join(root, ComposeDir)
	env, err := ReadEnvFile(filepath.Join(dir, ComposeEnvExample))
	if err != nil {
		return nil, err
	}
	for _, files := range ComposeVariants {
		p, err := LoadCompose(ctx, dir, files, env)
		if err != nil {
			return nil, err
		}
		for _, name := range p.ServiceNames() {
			s := p.Services[name]
			if !IsClozeloopImage(s.Image) {
				continue
			}
			if len(s.Entrypoint) > 0 {
				return nil, fmt.Errorf("compose service %s overrides the clozeloop image's entrypoint", name)
			}
			var names []string
			for k := range s.Environment {
				names = append(names, k)
			}
			sort.Strings(names)
			out = append(out, Invocation{Source: fmt.Sprintf("%s service %s", strings.Join(files, "+"), name), Args: s.Command, Env: names})
		}
	}
	mem, err := K8sFS(root)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{K8sBase, K8sOverlayExample} {
		objs, err := Build(mem, path.Join("/k8s", k))
		if err != nil {
			return nil, err
		}
		for _, d := range objs.Deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				if !IsClozeloopImage(c.Image) {
					continue
				}
				if len(c.Command) > 0 {
					return nil, fmt.Errorf("k8s %s Deployment %s container %s overrides the image's entrypoint (set args)", k, d.Name, c.Name)
				}
				env, missing := objs.ContainerEnv(c)
				if len(missing) > 0 {
					return nil, fmt.Errorf("k8s %s Deployment %s container %s: envFrom names %s, not in the build", k, d.Name, c.Name, strings.Join(missing, ", "))
				}
				out = append(out, Invocation{Source: fmt.Sprintf("k8s %s Deployment %s container %s", k, d.Name, c.Name), Args: c.Args, Env: env})
			}
		}
	}
	return out, nil
}
