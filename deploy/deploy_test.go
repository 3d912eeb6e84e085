package deploy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/clozeloop/clozeloop/workers"
	"github.com/clozeloop/clozeloop/workflows"
)

// root is the repository root (tests run in deploy/).
const root = ".."

// placeholder is the value of every secret in the example files.
const placeholder = "CHANGE-ME"

// secretName matches the names of variables and keys that hold secrets
// (isSecret leaves out the *_FILE variables, which hold paths).
var secretName = regexp.MustCompile(`(?i)secret|password|token|api_key|access_key|tls\.key|^key$`)

func isSecret(name string) bool {
	return secretName.MatchString(name) && !strings.HasSuffix(name, "_FILE")
}

// ---- Compose ----------------------------------------------------------

func composeEnv(t *testing.T) map[string]string {
	t.Helper()
	env, err := ReadEnvFile(filepath.Join(root, ComposeDir, ComposeEnvExample))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		if isSecret(k) && !strings.HasPrefix(v, placeholder) {
			t.Errorf("%s: %s=%q is not a %s placeholder", ComposeEnvExample, k, v, placeholder)
		}
	}
	return env
}

// checkCompose checks a loaded compose project against clozeloop's rules.
func checkCompose(p *types.Project, gpu bool) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	queues := map[string]string{}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		for _, port := range s.Ports {
			if port.Published != "" && port.HostIP != "127.0.0.1" {
				fail("service %s publishes port %s on %q, not on 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
		for k, v := range s.Environment {
			if v != nil && isSecret(k) && !strings.HasPrefix(*v, placeholder) {
				fail("service %s sets %s to a value that is not from .env (%s placeholders)", name, k, placeholder)
			}
		}
		all := strings.ToLower(strings.Join(append(slices.Clone(s.Command), s.Entrypoint...), " "))
		for k := range s.Environment {
			all += " " + strings.ToLower(k)
		}
		if strings.Contains(all, "cors") {
			fail("service %s configures CORS", name)
		}
		if !IsClozeloopImage(s.Image) {
			continue
		}
		if len(s.Command) == 0 {
			fail("clozeloop service %s has no command", name)
			continue
		}
		if slices.Contains(s.Command, "--no-auth") {
			fail("service %s runs with --no-auth", name)
		}
		if s.Command[0] == "worker" {
			queues[flagValue(s.Command, "--queues")] = name
		}
	}
	if queues["default"] == "" || queues["gpu"] == "" {
		fail("want a worker for --queues default and one for --queues gpu, have %v", queues)
	}
	if name := queues["gpu"]; name != "" {
		s := p.Services[name]
		device := flagValue(s.Command, "--device")
		var reserved bool
		if s.Deploy != nil && s.Deploy.Resources.Reservations != nil {
			for _, d := range s.Deploy.Resources.Reservations.Devices {
				reserved = reserved || (d.Driver == "nvidia" && slices.Contains(d.Capabilities, "gpu"))
			}
		}
		switch {
		case gpu && (!reserved || device != "cuda" || !strings.Contains(s.Image, "cuda")):
			fail("GPU override: %s has image %s, --device %q, nvidia GPU reserved %v; want the CUDA image, --device cuda and a reservation", name, s.Image, device, reserved)
		case !gpu && (reserved || device == "cuda"):
			fail("without the GPU override %s must run on the CPU (--device %q, reserved %v)", name, device, reserved)
		}
	}
	return errors.Join(errs...)
}

// flagValue is the value after flag in args ("" when absent).
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func TestComposeFiles(t *testing.T) {
	env := composeEnv(t)
	dir := filepath.Join(root, ComposeDir)
	for _, files := range ComposeVariants {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			p, err := LoadCompose(context.Background(), dir, files, env)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"postgresql", "temporal", "s3", "s3-bucket", "worker-default", "worker-gpu", "hook"} {
				if _, ok := p.Services[want]; !ok {
					t.Errorf("no service %s", want)
				}
			}
			if err := checkCompose(p, len(files) > 1); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestComposeBroken shows that the loader validates (a file the schema
// refuses fails) and that checkCompose catches what the schema allows.
func TestComposeBroken(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(root, ComposeDir, ComposeFile))
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := os.ReadFile(filepath.Join(root, ComposeDir, ComposeGPUFile))
	if err != nil {
		t.Fatal(err)
	}
	good := composeEnv(t)
	withoutKey := map[string]string{}
	for k, v := range good {
		if k != "S3_ACCESS_KEY_ID" {
			withoutKey[k] = v
		}
	}
	cases := []struct {
		name     string
		old, new string
		gpuOld   string
		gpuNew   string
		env      map[string]string
		want     string
	}{
		{name: "unknown service key", old: "    restart: unless-stopped\n", new: "    restart: unless-stopped\n    restrat: always\n", want: "restrat"},
		{name: "unknown top-level key", old: "name: clozeloop\n", new: "name: clozeloop\nservicez: {}\n", want: "servicez"},
		{name: "wrong type", old: "      retries: 30\n", new: "      retries: [30]\n", want: "retries"},
		{name: "unknown key in the GPU override", gpuOld: "          devices:\n", gpuNew: "          device:\n", want: "device"},
		{name: "required variable missing", env: withoutKey, want: "S3_ACCESS_KEY_ID"},
		{name: "port on every interface", old: "      - 127.0.0.1:8080:8080\n", new: "      - 8080:8080\n", want: "not on 127.0.0.1"},
		{name: "secret inline", old: "  CLOZELOOP_S3_SECRET_ACCESS_KEY: ${S3_SECRET_ACCESS_KEY:?", new: "  CLOZELOOP_S3_SECRET_ACCESS_KEY: hunter2${UNUSED:-", want: "not from .env"},
		{name: "CORS", old: `command: ["--port", ":7070",`, new: `command: ["--cors-allow-origin", "*", "--port", ":7070",`, want: "CORS"},
		{name: "no-auth hook", old: `command: ["hook", "--addr", "0.0.0.0:8080"]`, new: `command: ["hook", "--addr", "0.0.0.0:8080", "--no-auth"]`, want: "--no-auth"},
		{name: "no gpu worker", old: `command: ["worker", "--queues", "gpu",`, new: `command: ["worker", "--queues", "default",`, want: "--queues gpu"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			text, gpuText := string(orig), string(gpu)
			for _, r := range []struct {
				text     *string
				old, new string
			}{{&text, tc.old, tc.new}, {&gpuText, tc.gpuOld, tc.gpuNew}} {
				if r.old == "" {
					continue
				}
				if !strings.Contains(*r.text, r.old) {
					t.Fatalf("the compose file no longer contains %q: update this case", r.old)
				}
				*r.text = strings.Replace(*r.text, r.old, r.new, 1)
			}
			for name, b := range map[string]string{ComposeFile: text, ComposeGPUFile: gpuText} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			env := good
			if tc.env != nil {
				env = tc.env
			}
			files := ComposeVariants[0]
			if tc.gpuOld != "" {
				files = ComposeVariants[1]
			}
			p, err := LoadCompose(context.Background(), dir, files, env)
			if err == nil {
				err = checkCompose(p, len(files) > 1)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// ---- Kubernetes -------------------------------------------------------

func build(t *testing.T, fsys filesys.FileSystem, dir string) *Objects {
	t.Helper()
	objs, err := Build(fsys, path.Join("/k8s", dir))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// checkK8s checks a built kustomization against clozeloop's rules; base
// says whether it is the base (namespace-agnostic, placeholder Secrets).
func checkK8s(o *Objects, base bool) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	// Namespaces: none in the base, the overlay's everywhere else.
	metas := map[string]metav1.ObjectMeta{}
	for _, d := range o.Deployments {
		metas["Deployment "+d.Name] = d.ObjectMeta
	}
	for _, s := range o.Secrets {
		metas["Secret "+s.Name] = s.ObjectMeta
	}
	for _, s := range o.ScaledObjects {
		metas["ScaledObject "+s.Name] = s.ObjectMeta
	}
	for _, s := range o.Ingresses {
		metas["Ingress "+s.Name] = s.ObjectMeta
	}
	for _, s := range o.ConfigMaps {
		metas["ConfigMap "+s.Name] = s.ObjectMeta
	}
	for _, s := range o.Services {
		metas["Service "+s.Name] = s.ObjectMeta
	}
	for _, s := range o.NetworkPolicies {
		metas["NetworkPolicy "+s.Name] = s.ObjectMeta
	}
	for _, s := range o.TriggerAuths {
		metas["TriggerAuthentication "+s.Name] = s.ObjectMeta
	}
	for id, m := range metas {
		if base && m.Namespace != "" {
			fail("%s sets namespace %q in the base", id, m.Namespace)
		}
		if !base && m.Namespace == "" {
			fail("%s has no namespace in the overlay", id)
		}
	}

	// Secrets of the base hold placeholders only.
	if base {
		for _, s := range o.Secrets {
			for k, v := range s.StringData {
				if v != placeholder {
					fail("Secret %s key %s is not the placeholder %s", s.Name, k, placeholder)
				}
			}
			if len(s.Data) > 0 {
				fail("Secret %s has data: the base holds %s placeholders in stringData only", s.Name, placeholder)
			}
		}
	}

	workers := map[string]*appsv1.Deployment{}
	var hook *appsv1.Deployment
	for i := range o.Deployments {
		d := &o.Deployments[i]
		ps := d.Spec.Template.Spec
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			fail("Deployment %s mounts a service account token", d.Name)
		}
		if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
			fail("Deployment %s may run as root", d.Name)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			fail("Deployment %s: selector does not match its pod labels (%v)", d.Name, err)
		}
		var covered bool
		for _, np := range o.NetworkPolicies {
			s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			covered = covered || (err == nil && s.Matches(labels.Set(d.Spec.Template.Labels)))
		}
		if !covered {
			fail("Deployment %s: no NetworkPolicy selects its pods", d.Name)
		}
		for _, v := range ps.Volumes {
			if v.Secret == nil {
				continue
			}
			if s := o.Secret(v.Secret.SecretName); s == nil {
				fail("Deployment %s volume %s: no Secret %s", d.Name, v.Name, v.Secret.SecretName)
			}
		}
		for _, c := range ps.Containers {
			id := fmt.Sprintf("Deployment %s container %s", d.Name, c.Name)
			if !IsClozeloopImage(c.Image) {
				fail("%s: image %s is not one of clozeloop's (deploy/docker)", id, c.Image)
			}
			if len(c.Command) > 0 || len(c.Args) == 0 {
				fail("%s: want args after the image's entrypoint, no command", id)
				continue
			}
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				fail("%s: allows privilege escalation", id)
			}
			if _, missing := o.ContainerEnv(c); len(missing) > 0 {
				fail("%s: envFrom names %s, not in the build", id, strings.Join(missing, ", "))
			}
			for _, e := range c.Env {
				if e.Value != "" && isSecret(e.Name) {
					fail("%s: %s has an inline value; take it from a Secret (valueFrom.secretKeyRef)", id, e.Name)
				}
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					s := o.Secret(r.Name)
					switch {
					case s == nil:
						fail("%s: %s names Secret %s, not in the build", id, e.Name, r.Name)
					case !SecretKeys(s)[r.Key]:
						fail("%s: %s names key %s of Secret %s, which has none", id, e.Name, r.Key, r.Name)
					}
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					if cm := o.ConfigMap(r.Name); cm == nil || cm.Data[r.Key] == "" {
						fail("%s: %s names key %s of ConfigMap %s, not in the build", id, e.Name, r.Key, r.Name)
					}
				}
			}
			checkMetrics(c, ps, fail, id)
			switch c.Args[0] {
			case "worker":
				q := flagValue(c.Args, "--queues")
				if q != "default" && q != "gpu" {
					fail("%s: worker --queues %q, want one queue per Deployment (default or gpu)", id, q)
					continue
				}
				if workers[q] != nil {
					fail("%s: a second Deployment for --queues %s", id, q)
				}
				workers[q] = d
				gpus, hasGPU := c.Resources.Limits["nvidia.com/gpu"]
				if q == "default" && (hasGPU || strings.Contains(c.Image, "cuda")) {
					fail("%s: the default queue's workers need no GPU", id)
				}
				if q != "gpu" {
					continue
				}
				if !strings.Contains(c.Image, "cuda") {
					fail("%s: image %s is not the CUDA image", id, c.Image)
				}
				if flagValue(c.Args, "--device") != "cuda" {
					fail("%s: want --device cuda", id)
				}
				if n, err := strconv.ParseInt(flagValue(c.Args, "--gpus"), 10, 64); !hasGPU || err != nil || gpus.Value() != n {
					fail("%s: nvidia.com/gpu limit %v (set %v) must equal --gpus %q", id, gpus.Value(), hasGPU, flagValue(c.Args, "--gpus"))
				}
				if len(ps.NodeSelector) == 0 {
					fail("%s: GPU workers need a nodeSelector for GPU nodes", id)
				}
				if !slices.ContainsFunc(ps.Tolerations, func(t corev1.Toleration) bool { return t.Key == "nvidia.com/gpu" }) {
					fail("%s: GPU workers need a toleration for nvidia.com/gpu", id)
				}
			case "hook":
				hook = d
				if slices.Contains(c.Args, "--no-auth") {
					fail("%s: the hook runs with --no-auth", id)
				}
			default:
				fail("%s: unexpected command %q", id, c.Args[0])
			}
		}
	}
	if workers["default"] == nil || workers["gpu"] == nil {
		fail("want a worker Deployment for each queue (default, gpu), have %d", len(workers))
	}

	// The hook's Service and Ingress.
	if hook == nil {
		fail("no hook Deployment")
	} else {
		if len(o.Ingresses) == 0 {
			fail("the hook has no Ingress")
		}
		for _, ing := range o.Ingresses {
			tlsHosts := map[string]bool{}
			for _, t := range ing.Spec.TLS {
				if t.SecretName == "" {
					fail("Ingress %s: TLS without a secretName", ing.Name)
				}
				for _, h := range t.Hosts {
					tlsHosts[h] = true
				}
			}
			for _, r := range ing.Spec.Rules {
				if !tlsHosts[r.Host] {
					fail("Ingress %s: host %q is served without TLS", ing.Name, r.Host)
				}
				if r.HTTP == nil {
					continue
				}
				for _, p := range r.HTTP.Paths {
					if p.Backend.Service == nil {
						fail("Ingress %s: a path without a Service backend", ing.Name)
						continue
					}
					if err := checkServiceBackend(o, hook, p.Backend.Service.Name, p.Backend.Service.Port.Name); err != nil {
						fail("Ingress %s: %v", ing.Name, err)
					}
				}
			}
		}
	}

	// KEDA scales the GPU workers on the gpu queue.
	if len(o.ScaledObjects) != 1 {
		fail("want one ScaledObject, have %d", len(o.ScaledObjects))
	}
	for _, so := range o.ScaledObjects {
		if err := checkScaledObject(o, so, workers["gpu"]); err != nil {
			fail("ScaledObject %s: %v", so.Name, err)
		}
	}
	return errors.Join(errs...)
}

func checkServiceBackend(o *Objects, hook *appsv1.Deployment, name, port string) error {
	for _, s := range o.Services {
		if s.Name != name {
			continue
		}
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(hook.Spec.Template.Labels)) {
			return fmt.Errorf("Service %s does not select the hook's pods", name)
		}
		for _, p := range s.Spec.Ports {
			if p.Name != port {
				continue
			}
			for _, c := range hook.Spec.Template.Spec.Containers {
				for _, cp := range c.Ports {
					if cp.Name == p.TargetPort.StrVal || cp.ContainerPort == p.TargetPort.IntVal {
						return nil
					}
				}
			}
			return fmt.Errorf("Service %s port %s targets %s, which the hook does not listen on", name, port, p.TargetPort.String())
		}
		return fmt.Errorf("Service %s has no port %q", name, port)
	}
	return fmt.Errorf("no Service %s", name)
}

func checkScaledObject(o *Objects, so ScaledObject, gpu *appsv1.Deployment) error {
	ref := so.Spec.ScaleTargetRef
	if ref == nil || (ref.Kind != "" && ref.Kind != "Deployment") {
		return fmt.Errorf("scaleTargetRef %+v is not a Deployment", ref)
	}
	target := o.Deployment(ref.Name)
	if target == nil {
		return fmt.Errorf("scaleTargetRef names Deployment %s, not in the build", ref.Name)
	}
	if gpu == nil || target.Name != gpu.Name {
		return fmt.Errorf("scales %s, not the gpu-queue workers", target.Name)
	}
	if target.Spec.Replicas != nil {
		return fmt.Errorf("Deployment %s sets replicas, which every apply would reset under KEDA", target.Name)
	}
	env, _ := o.ContainerEnv(target.Spec.Template.Spec.Containers[0])
	if len(so.Spec.Triggers) != 1 {
		return fmt.Errorf("want one trigger, have %d", len(so.Spec.Triggers))
	}
	tr := so.Spec.Triggers[0]
	if tr.Type != "temporal" {
		return fmt.Errorf("trigger type %q, want temporal", tr.Type)
	}
	for k, v := range tr.Metadata {
		if !TemporalTriggerMetadata[k] {
			return fmt.Errorf("trigger metadata %q is not a parameter of KEDA's temporal scaler", k)
		}
		if strings.HasSuffix(k, "FromEnv") && !slices.Contains(env, v) {
			return fmt.Errorf("%s names %s, which the container of %s does not have", k, v, target.Name)
		}
	}
	if tq := tr.Metadata["taskQueue"]; tq != workflows.GPUTaskQueue {
		return fmt.Errorf("taskQueue %q, want %q (workflows.GPUTaskQueue)", tq, workflows.GPUTaskQueue)
	}
	if tr.Metadata["endpoint"] == "" && tr.Metadata["endpointFromEnv"] == "" {
		return errors.New("no endpoint")
	}
	if n, err := strconv.Atoi(tr.Metadata["targetQueueSize"]); err != nil || n < 1 {
		return fmt.Errorf("targetQueueSize %q, want a number >= 1", tr.Metadata["targetQueueSize"])
	}
	for _, q := range strings.Split(tr.Metadata["queueTypes"], ",") {
		if q != "" && q != "workflow" && q != "activity" && q != "nexus" {
			return fmt.Errorf("queueTypes: %q is not workflow, activity or nexus", q)
		}
	}
	if tr.AuthenticationRef == nil {
		return errors.New("no authenticationRef: the Temporal frontend needs credentials")
	}
	for _, ta := range o.TriggerAuths {
		if ta.Name != tr.AuthenticationRef.Name {
			continue
		}
		for _, r := range ta.Spec.SecretTargetRef {
			if !TemporalAuthParams[r.Parameter] {
				return fmt.Errorf("TriggerAuthentication %s: %q is not an auth parameter of the temporal scaler", ta.Name, r.Parameter)
			}
			if s := o.Secret(r.Name); s == nil || !SecretKeys(s)[r.Key] {
				return fmt.Errorf("TriggerAuthentication %s: no key %s in Secret %s", ta.Name, r.Key, r.Name)
			}
		}
		return nil
	}
	return fmt.Errorf("authenticationRef names TriggerAuthentication %s, not in the build", tr.AuthenticationRef.Name)
}

func TestKustomize(t *testing.T) {
	mem, err := K8sFS(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{K8sBase, K8sOverlayExample} {
		t.Run(dir, func(t *testing.T) {
			o := build(t, mem, dir)
			if err := checkK8s(o, dir == K8sBase); err != nil {
				t.Error(err)
			}
			if dir == K8sOverlayExample {
				checkBuildID(t, o)
				for _, d := range o.Deployments {
					for _, c := range d.Spec.Template.Spec.Containers {
						if !strings.HasPrefix(c.Image, "registry.example.com/") {
							t.Errorf("Deployment %s: image %s not mapped by the overlay", d.Name, c.Image)
						}
					}
				}
			}
		})
	}
}

// checkMetrics checks that a container serves Prometheus metrics on a
// named port "metrics", and, when it listens beyond loopback, with a
// bearer token file inside a mounted Secret volume.
func checkMetrics(c corev1.Container, ps corev1.PodSpec, fail func(string, ...any), id string) {
	addr := flagValue(c.Args, "--metrics-listen")
	if addr == "" {
		fail("%s: no --metrics-listen (the dashboard needs every worker's and the hook's metrics)", id)
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		fail("%s: --metrics-listen %q: %v", id, addr, err)
		return
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		return p.Name == "metrics" && strconv.Itoa(int(p.ContainerPort)) == port
	}) {
		fail("%s: no container port named metrics on %s", id, port)
	}
	if strings.HasPrefix(addr, "127.") || strings.HasPrefix(addr, "localhost:") {
		return
	}
	file := flagValue(c.Args, "--metrics-token-file")
	if file == "" {
		fail("%s: --metrics-listen %s without --metrics-token-file (clozeloop refuses it off loopback)", id, addr)
		return
	}
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return
			}
		}
	}
	fail("%s: --metrics-token-file %s is not in a mounted Secret", id, file)
}

// checkBuildID checks the overlay's worker versioning: a valid build id,
// the release its images are tagged with.
func checkBuildID(t *testing.T, o *Objects) {
	t.Helper()
	var id string
	for _, cm := range o.ConfigMaps {
		if strings.HasPrefix(cm.Name, "clozeloop-config") {
			id = cm.Data["CLOZELOOP_BUILD_ID"]
		}
	}
	if err := (workers.Versioning{BuildID: id}).Validate(); err != nil || id == "" {
		t.Fatalf("overlay sets CLOZELOOP_BUILD_ID %q (%v): want the release's build id", id, err)
	}
	for _, d := range o.Deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if !strings.HasSuffix(c.Image, "-"+id) {
				t.Errorf("Deployment %s runs image %s, not of release %s (CLOZELOOP_BUILD_ID)", d.Name, c.Image, id)
			}
		}
	}
}

// TestKustomizeBroken changes one file of the base at a time: each change
// must fail the build, the strict decode or checkK8s.
func TestKustomizeBroken(t *testing.T) {
	cases := []struct {
		name, file, old, new, want string
	}{
		{"unknown field in a Deployment", "worker-gpu.yaml", "      nodeSelector:", "      nodeSelectr:", "unknown field"},
		{"unknown field in a container", "hook.yaml", "          readinessProbe:", "          readynessProbe:", "unknown field"},
		{"unknown field in the ScaledObject", "keda.yaml", "  cooldownPeriod: 3600", "  cooldownPeriods: 3600", "unknown field"},
		{"unknown field in the TriggerAuthentication", "keda.yaml", "  secretTargetRef:", "  secretTargetRefs:", "unknown field"},
		{"wrong KEDA API version", "keda.yaml", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject", "apiVersion: keda.sh/v1\nkind: ScaledObject", "apiVersion"},
		{"unknown temporal metadata", "keda.yaml", "        targetQueueSize:", "        targetQueueLength:", "not a parameter"},
		{"FromEnv variable the container lacks", "keda.yaml", "endpointFromEnv: CLOZELOOP_TEMPORAL_ADDRESS", "endpointFromEnv: TEMPORAL_ADDRESS", "does not have"},
		{"wrong task queue", "keda.yaml", "taskQueue: clozeloop-gpu", "taskQueue: clozeloop-default", "workflows.GPUTaskQueue"},
		{"scale target not in the base", "keda.yaml", "  scaleTargetRef:\n    name: clozeloop-worker-gpu", "  scaleTargetRef:\n    name: clozeloop-worker-gpus", "not in the build"},
		{"auth secret key missing", "keda.yaml", "      key: ca.crt", "      key: ca.pem", "no key ca.pem"},
		{"secretKeyRef to a missing key", "worker-default.yaml", "key: access-key-id", "key: access-key", "names key access-key"},
		{"secretKeyRef to a missing Secret", "hook.yaml", "name: clozeloop-s3\n                  key: secret-access-key", "name: s3\n                  key: secret-access-key", "names Secret s3"},
		{"inline secret", "worker-default.yaml", "- name: CLOZELOOP_S3_SECRET_ACCESS_KEY\n              valueFrom:\n                secretKeyRef:\n                  name: clozeloop-s3\n                  key: secret-access-key", "- name: CLOZELOOP_S3_SECRET_ACCESS_KEY\n              value: hunter2", "inline value"},
		{"real value in the placeholder Secret", "secrets.yaml", "  secret-access-key: CHANGE-ME", "  secret-access-key: hunter2", "not the placeholder"},
		{"GPU limit missing", "worker-gpu.yaml", "              memory: 32Gi\n              nvidia.com/gpu: \"1\"", "              memory: 32Gi", "nvidia.com/gpu limit"},
		{"GPU toleration missing", "worker-gpu.yaml", "        - key: nvidia.com/gpu", "        - key: gpu", "toleration"},
		{"GPU worker on the CPU image", "worker-gpu.yaml", "image: clozeloop-cuda", "image: clozeloop-cpu", "not the CUDA image"},
		{"replicas under KEDA", "worker-gpu.yaml", "spec:\n  selector:", "spec:\n  replicas: 1\n  selector:", "sets replicas"},
		{"hook without auth", "hook.yaml", `"--secure-cookie",`, `"--secure-cookie", "--no-auth",`, "--no-auth"},
		{"Ingress host without TLS", "hook.yaml", "    - host: label.example.com", "    - host: other.example.com", "without TLS"},
		{"namespace in the base", "config.yaml", "  name: clozeloop-config\n", "  name: clozeloop-config\n  namespace: prod\n", "sets namespace"},
		{"unknown kind", "config.yaml", "kind: ConfigMap", "kind: ConfigMapp", "not one the deployment files use"},
		{"missing file", "kustomization.yaml", "  - networkpolicy.yaml", "  - networkpolicies.yaml", "networkpolicies.yaml"},
		{"metrics without token", "worker-gpu.yaml", `, "--metrics-token-file", "/etc/clozeloop/metrics/token"]`, `]`, "without --metrics-token-file"},
		{"metrics token outside a Secret", "hook.yaml", `"--metrics-token-file", "/etc/clozeloop/metrics/token"`, `"--metrics-token-file", "/tmp/token"`, "not in a mounted Secret"},
		{"metrics port unnamed", "worker-default.yaml", "            - name: metrics\n              containerPort: 9464", "            - name: prom\n              containerPort: 9464", "no container port named metrics"},
		{"no metrics", "hook.yaml", `, "--metrics-listen", "0.0.0.0:9464", "--metrics-token-file", "/etc/clozeloop/metrics/token"]`, `]`, "no --metrics-listen"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem, err := K8sFS(root)
			if err != nil {
				t.Fatal(err)
			}
			file := path.Join("/k8s", K8sBase, tc.file)
			b, err := mem.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.old) {
				t.Fatalf("%s no longer contains %q: update this case", tc.file, tc.old)
			}
			if err := mem.WriteFile(file, []byte(strings.Replace(string(b), tc.old, tc.new, 1))); err != nil {
				t.Fatal(err)
			}
			o, err := Build(mem, path.Join("/k8s", K8sBase))
			if err == nil {
				err = checkK8s(o, true)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDecodeObjectStrict(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		into any
		ok   bool
	}{
		{"Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: 1}\n", &appsv1.Deployment{}, true},
		{"Deployment unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replica: 1}\n", &appsv1.Deployment{}, false},
		{"Deployment duplicate field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nmetadata: {name: b}\n", &appsv1.Deployment{}, false},
		{"Secret wrong type", "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: [a]\n", &corev1.Secret{}, false},
		{"ScaledObject", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: a}\nspec: {scaleTargetRef: {name: b}, triggers: [{type: temporal, metadata: {taskQueue: q}}]}\n", &ScaledObject{}, true},
		{"ScaledObject unknown field", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: a}\nspec: {scaleTarget: {name: b}}\n", &ScaledObject{}, false},
		{"ScaledObject unknown trigger field", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: a}\nspec: {triggers: [{type: temporal, meta: {}}]}\n", &ScaledObject{}, false},
		{"TriggerAuthentication unknown field", "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: a}\nspec: {secretTargetRef: [{parameter: cert, name: s, key: k, optional: true}]}\n", &TriggerAuthentication{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := DecodeObject([]byte(tc.doc), tc.into)
			if (err == nil) != tc.ok {
				t.Fatalf("DecodeObject: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// ---- Dockerfiles ------------------------------------------------------

// A dockerStage is one FROM … of a Dockerfile with its RUN commands.
type dockerStage struct {
	from string
	runs []string
}

// parseDockerfile splits a Dockerfile into stages, joining continued lines
// and leaving comments out.
func parseDockerfile(text string) []dockerStage {
	var stages []dockerStage
	var logical []string
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if cur == "" && (t == "" || strings.HasPrefix(t, "#")) {
			continue
		}
		if s, ok := strings.CutSuffix(t, "\\"); ok {
			cur += s + " "
			continue
		}
		logical = append(logical, cur+t)
		cur = ""
	}
	for _, l := range logical {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			stages = append(stages, dockerStage{from: rest})
		case "RUN":
			if len(stages) > 0 {
				stages[len(stages)-1].runs = append(stages[len(stages)-1].runs, rest)
			}
		}
	}
	return stages
}

// setupPackages reads the package lists of scripts/setup.sh.
func setupPackages(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "scripts/setup.sh"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Z]+_PACKAGES)="([^"]*)"$`).FindAllStringSubmatch(string(b), -1) {
		for _, p := range strings.Fields(m[2]) {
			pkgs[p] = m[1]
		}
	}
	if pkgs["libtorch-dev"] == "" || pkgs["libtorch1.13"] == "" {
		t.Fatalf("scripts/setup.sh: package lists not found (have %v)", pkgs)
	}
	return pkgs
}

// aptInstalled is the packages an apt-get install in a RUN names.
func aptInstalled(run string) []string {
	var out []string
	for _, cmd := range regexp.MustCompile(`&&|;|\|\|`).Split(run, -1) {
		f := strings.Fields(cmd)
		i := slices.Index(f, "install")
		if i < 0 || !slices.ContainsFunc(f[:i], func(s string) bool { return strings.HasSuffix(s, "apt-get") || s == "apt" }) {
			continue
		}
		for _, p := range f[i+1:] {
			if !strings.HasPrefix(p, "-") {
				out = append(out, p)
			}
		}
	}
	return out
}

// checkDockerfile checks that a Dockerfile installs system packages only
// through scripts/setup.sh and builds with make build.
func checkDockerfile(text string, pkgs map[string]string) error {
	var errs []error
	stages := parseDockerfile(text)
	built := false
	for i, s := range stages {
		setup, build := -1, -1
		for j, r := range s.runs {
			if strings.Contains(r, "scripts/setup.sh build") && setup < 0 {
				setup = j
			}
			if regexp.MustCompile(`(^|&&\s*|;\s*)make build\b`).MatchString(r) {
				build = j
			}
			for _, p := range aptInstalled(r) {
				if list := pkgs[p]; list != "" {
					errs = append(errs, fmt.Errorf("stage %d (FROM %s) installs %s itself; scripts/setup.sh lists it (%s): run the script", i+1, s.from, p, list))
				}
			}
		}
		if build < 0 {
			continue
		}
		built = true
		if setup < 0 || setup > build {
			errs = append(errs, fmt.Errorf("stage %d (FROM %s) runs make build without scripts/setup.sh build before it", i+1, s.from))
		}
		for _, r := range s.runs {
			if strings.Contains(r, "apt-get") || strings.Contains(r, "apt ") {
				errs = append(errs, fmt.Errorf("stage %d (FROM %s) builds clozeloop and runs apt itself: %q", i+1, s.from, r))
			}
		}
	}
	if !built {
		errs = append(errs, errors.New("no stage runs make build"))
	}
	if len(stages) > 0 {
		for _, r := range stages[len(stages)-1].runs {
			if strings.Contains(r, "apt-get") && !strings.Contains(r, "setup.sh runtime") {
				errs = append(errs, fmt.Errorf("the runtime stage runs apt itself (use scripts/setup.sh runtime): %q", r))
			}
		}
	}
	return errors.Join(errs...)
}

func TestDockerfiles(t *testing.T) {
	pkgs := setupPackages(t)
	for _, name := range []string{"Dockerfile.cpu", "Dockerfile.cuda"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(root, "deploy/docker", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := checkDockerfile(string(b), pkgs); err != nil {
				t.Error(err)
			}
		})
	}
	// make setup, the README's set-up, is the same script.
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^setup:.*\n\t@?scripts/setup\.sh all$`).Match(mk) {
		t.Error("Makefile: the setup target does not run scripts/setup.sh all first")
	}
}

func TestDockerfileBroken(t *testing.T) {
	pkgs := setupPackages(t)
	good := "FROM debian:12 AS build\nRUN scripts/setup.sh build\nRUN make build\nFROM debian:12-slim\nRUN /tmp/setup.sh runtime && rm -rf /var/lib/apt/lists/*\n"
	if err := checkDockerfile(good, pkgs); err != nil {
		t.Fatalf("the good example fails: %v", err)
	}
	cases := []struct{ name, text, want string }{
		{"own apt list in the build stage", "FROM debian:12 AS build\nRUN apt-get update \\\n && apt-get install -y --no-install-recommends \\\n   g++ libtorch-dev\nRUN scripts/setup.sh build\nRUN make build\n", "installs libtorch-dev itself"},
		{"apt in the build stage", "FROM debian:12 AS build\nRUN scripts/setup.sh build\nRUN apt-get install -y unzip\nRUN make build\n", "runs apt itself"},
		{"no setup before make build", "FROM debian:12 AS build\nRUN make build\nRUN scripts/setup.sh build\n", "without scripts/setup.sh build"},
		{"own runtime list", good + "RUN apt-get update && apt-get install -y libopenblas0-pthread\n", "installs libopenblas0-pthread itself"},
		{"no make build", "FROM debian:12 AS build\nRUN scripts/setup.sh build\nRUN go build ./cmd/clozeloop\n", "no stage runs make build"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkDockerfile(tc.text, pkgs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
