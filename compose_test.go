// Tests of the container files: Dockerfile, .dockerignore, the compose files
// and deploy/nats/auth.conf. The compose files are loaded with the Compose
// Specification's reference loader (compose-go), the NATS server commands and
// configuration are parsed with nats-server's own parsers, and the
// permissions in auth.conf are exercised against an in-process NATS server.
// Nothing here needs Docker or a network.
package callcast_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

const authConf = "deploy/nats/auth.conf"

// authEnv holds passwords of the documented form ("p" + hex) for the three
// NATS users, keyed by the variables auth.conf and the compose files read.
var authEnv = map[string]string{
	"NATS_EDGE_PASSWORD":     "p1e3f0c9a7d2b4e6f8a0c1e3f5a7b9d",
	"NATS_WORKER_PASSWORD":   "p7c1d9e2f4a6b8c0d1e3f5a7b9c2d4e",
	"NATS_PRODUCER_PASSWORD": "p4e6f8a0b2c4d6e8f0a1b3c5d7e9f1a",
}

// composeCase is one way of running the product with compose.
type composeCase struct {
	name  string
	files []string
	env   map[string]string
	// nats are the NATS server services; the edge's and workers' NATS_URL
	// must list each of them.
	nats []string
}

var composeCases = []composeCase{
	{name: "single", files: []string{"docker-compose.yml"}, nats: []string{"nats"}},
	{name: "auth", files: []string{"docker-compose.yml", "docker-compose.auth.yml"}, env: authEnv, nats: []string{"nats"}},
	{name: "cluster", files: []string{"docker-compose.cluster.yml"}, nats: []string{"nats-1", "nats-2", "nats-3"}},
}

// loadCompose loads files as "docker compose -f ..." would, with env as the
// only environment (no .env file, nothing from the OS).
func loadCompose(t *testing.T, env map[string]string, files ...string) (*types.Project, error) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(wd),
		cli.WithEnv(kv),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoadCompose(t *testing.T, env map[string]string, files ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, env, files...)
	if err != nil {
		t.Fatalf("load %v: %v", files, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("no service %q (have %v)", name, p.ServiceNames())
	}
	return s
}

func getenv(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// natsOptions parses a NATS service's command with nats-server's own flag
// parser, reading a -c config file from where the service mounts it.
func natsOptions(t *testing.T, s types.ServiceConfig) *server.Options {
	t.Helper()
	args := slices.Clone([]string(s.Command))
	for i, a := range args {
		if (a == "-c" || a == "--config") && i+1 < len(args) {
			args[i+1] = hostPath(t, s, args[i+1])
		}
	}
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nop := func() {}
	opts, err := server.ConfigureOptions(fs, args, nop, nop, nop)
	if err != nil {
		t.Fatalf("nats-server %s: %v", strings.Join(s.Command, " "), err)
	}
	return opts
}

// hostPath returns the host file bind-mounted at target in s.
func hostPath(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target && v.Type == types.VolumeTypeBind {
			return v.Source
		}
	}
	t.Fatalf("%s: nothing is mounted at %s", s.Name, target)
	return ""
}

func volumeAt(s types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

func clientPort(o *server.Options) int {
	if o.Port == 0 {
		return server.DEFAULT_PORT
	}
	return o.Port
}

func TestComposeFiles(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	df := parseDockerfile(t)
	for _, tc := range composeCases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env { // auth.conf reads them when parsed
				t.Setenv(k, v)
			}
			p := mustLoadCompose(t, tc.env, tc.files...)
			want := append(slices.Clone(tc.nats), "edge", "worker")
			if got := p.ServiceNames(); !sameSet(got, want) {
				t.Fatalf("services = %v, want %v", got, want)
			}
			nodes := map[string]*server.Options{}
			for _, name := range tc.nats {
				t.Run(name, func(t *testing.T) {
					nodes[name] = checkNATSService(t, service(t, p, name))
				})
			}
			if len(nodes) != len(tc.nats) {
				t.FailNow()
			}
			if len(tc.nats) > 1 {
				t.Run("cluster", func(t *testing.T) { checkNATSCluster(t, p, nodes) })
			}
			for _, role := range []string{"edge", "worker"} {
				t.Run(role, func(t *testing.T) {
					checkCallcastService(t, df, wd, service(t, p, role), role, nodes)
				})
			}
			t.Run("edge/port", func(t *testing.T) {
				s := service(t, p, "edge")
				port := portOf(t, getenv(s, "EDGE_ADDR"))
				if len(s.Ports) != 1 || s.Ports[0].Target != uint32(port) || s.Ports[0].Published != "8080" {
					t.Errorf("ports = %+v, want 8080:%d", s.Ports, port)
				}
			})
			t.Run("worker/scalable", func(t *testing.T) {
				s := service(t, p, "worker")
				if s.ContainerName != "" {
					t.Errorf("container_name = %q; --scale needs none", s.ContainerName)
				}
				if len(s.Ports) != 0 {
					t.Errorf("ports = %+v; --scale needs no host ports", s.Ports)
				}
				if got := getenv(s, "WORKER_CONCURRENCY"); got == "" {
					t.Error("WORKER_CONCURRENCY unset")
				}
			})
		})
	}
}

// checkNATSService checks a NATS server service: JetStream on a persistent
// volume, monitoring, and a healthcheck of the monitoring port. It returns
// the server's options.
func checkNATSService(t *testing.T, s types.ServiceConfig) *server.Options {
	if !strings.HasPrefix(s.Image, "nats:2.") || !strings.HasSuffix(s.Image, "-alpine") {
		t.Errorf("image = %q, want an official nats:2.x-alpine (its wget runs the healthcheck)", s.Image)
	}
	o := natsOptions(t, s)
	if !o.JetStream {
		t.Error("JetStream is off")
	}
	if o.StoreDir == "" {
		t.Error("no JetStream store dir")
	} else if v, ok := volumeAt(s, o.StoreDir); !ok || v.Type != types.VolumeTypeVolume {
		t.Errorf("store dir %s is not on a named volume (volumes %+v)", o.StoreDir, s.Volumes)
	}
	if o.HTTPPort != 8222 {
		t.Errorf("monitoring port = %d, want 8222", o.HTTPPort)
	}
	hc := s.HealthCheck
	if hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[1] != "wget" {
		t.Fatalf("healthcheck = %+v, want CMD wget of /healthz", hc)
	}
	u, err := url.Parse(hc.Test[len(hc.Test)-1])
	if err != nil || u.Path != "/healthz" || u.Hostname() != "127.0.0.1" || u.Port() != strconv.Itoa(o.HTTPPort) {
		t.Errorf("healthcheck URL = %q, want http://127.0.0.1:%d/healthz", hc.Test[len(hc.Test)-1], o.HTTPPort)
	}
	for _, sp := range s.Ports {
		if sp.HostIP != "127.0.0.1" {
			t.Errorf("port %d published on %q; NATS and its monitoring stay on the host's loopback", sp.Target, sp.HostIP)
		}
	}
	return o
}

func checkNATSCluster(t *testing.T, p *types.Project, nodes map[string]*server.Options) {
	names := map[string]bool{}
	stores := map[string]bool{}
	var cluster string
	for node, o := range nodes {
		if o.Cluster.Name == "" || (cluster != "" && o.Cluster.Name != cluster) {
			t.Errorf("%s: cluster name %q; all nodes need one, the same", node, o.Cluster.Name)
		}
		cluster = o.Cluster.Name
		if o.ServerName == "" || names[o.ServerName] {
			t.Errorf("%s: server name %q must be set and unique", node, o.ServerName)
		}
		names[o.ServerName] = true
		v, _ := volumeAt(service(t, p, node), o.StoreDir)
		if stores[v.Source] {
			t.Errorf("%s: shares JetStream volume %q", node, v.Source)
		}
		stores[v.Source] = true

		var routed []string
		for _, r := range o.Routes {
			peer, ok := nodes[r.Hostname()]
			switch {
			case !ok:
				t.Errorf("%s: route %s is to no NATS node", node, r)
			case r.Hostname() == node:
				t.Errorf("%s: routes to itself", node)
			case r.Port() != strconv.Itoa(peer.Cluster.Port):
				t.Errorf("%s: route %s, but %s listens for routes on %d", node, r, r.Hostname(), peer.Cluster.Port)
			}
			routed = append(routed, r.Hostname())
		}
		var others []string
		for n := range nodes {
			if n != node {
				others = append(others, n)
			}
		}
		if !sameSet(routed, others) {
			t.Errorf("%s: routes to %v, want %v", node, routed, others)
		}
		// Let nats-server validate the node as a whole (cluster plus
		// JetStream) without starting it.
		o := o.Clone()
		o.StoreDir = t.TempDir()
		ns, err := server.NewServer(o)
		if err != nil {
			t.Errorf("%s: nats-server refuses the options: %v", node, err)
			continue
		}
		ns.Shutdown()
	}
}

// checkCallcastService checks what edge and worker services share.
func checkCallcastService(t *testing.T, df dockerfile, wd string, s types.ServiceConfig, role string, nodes map[string]*server.Options) {
	if s.Build == nil || s.Build.Target != role {
		t.Errorf("build = %+v, want target %q", s.Build, role)
	}
	st, ok := df.stage(role)
	if !ok {
		t.Fatalf("Dockerfile has no %q stage", role)
	}
	entry := st.exec("ENTRYPOINT")

	// Healthcheck: the image's binary, which has no shell to run anything else.
	wantHC := []string{"CMD", entry[0], "healthcheck"}
	if s.HealthCheck == nil || !slices.Equal(s.HealthCheck.Test, wantHC) {
		t.Errorf("healthcheck = %+v, want %q", s.HealthCheck, wantHC)
	}

	// NATS: every node, each at its client port.
	var hosts []string
	for _, u := range strings.Split(getenv(s, "NATS_URL"), ",") {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "nats" {
			t.Errorf("NATS_URL entry %q is not a nats:// URL", u)
			continue
		}
		o, ok := nodes[pu.Hostname()]
		if !ok {
			t.Errorf("NATS_URL entry %q names no NATS service", u)
			continue
		}
		if pu.Port() != strconv.Itoa(clientPort(o)) {
			t.Errorf("NATS_URL entry %q, but %s listens on %d", u, pu.Hostname(), clientPort(o))
		}
		hosts = append(hosts, pu.Hostname())
	}
	if !sameSet(hosts, slices.Collect(maps.Keys(nodes))) {
		t.Errorf("NATS_URL = %q, want every NATS node", getenv(s, "NATS_URL"))
	}
	for node := range nodes {
		if d, ok := s.DependsOn[node]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("depends_on[%s] = %+v, want condition service_healthy", node, d)
		}
	}

	// Audio: the repository's audio/ read-only at AUDIO_DIR.
	if got := getenv(s, "AUDIO_DIR"); got != "/audio" {
		t.Errorf("AUDIO_DIR = %q, want /audio", got)
	}
	v, ok := volumeAt(s, "/audio")
	if !ok || !v.ReadOnly || v.Source != filepath.Join(wd, "audio") {
		t.Errorf("/audio volume = %+v, want ./audio read-only", v)
	}

	// Shutdown: compose waits longer than the process drains.
	drain, err := time.ParseDuration(getenv(s, "DRAIN_TIMEOUT"))
	if err != nil {
		t.Errorf("DRAIN_TIMEOUT: %v", err)
	} else if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= drain {
		t.Errorf("stop_grace_period %v does not exceed DRAIN_TIMEOUT %v", s.StopGracePeriod, drain)
	}
	for _, k := range []string{"LOG_LEVEL", "LOG_FORMAT", "DEFAULT_AUDIO"} {
		if getenv(s, k) == "" {
			t.Errorf("%s unset", k)
		}
	}
	if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
		t.Errorf("read_only %v, cap_drop %v; want a read-only root and no capabilities", s.ReadOnly, s.CapDrop)
	}
}

// TestComposeInterpolation checks that the tunable values reach the services.
func TestComposeInterpolation(t *testing.T) {
	env := map[string]string{
		"PUBLIC_URL":         "https://voice.example.com",
		"TWILIO_AUTH_TOKEN":  "token-1",
		"TRUST_PROXY":        "true",
		"WORKER_CONCURRENCY": "7",
		"DEFAULT_AUDIO":      "hello.mp3",
		"DRAIN_TIMEOUT":      "12s",
		"LOG_LEVEL":          "debug",
		"LOG_FORMAT":         "text",
		"EDGE_PORT":          "9000",
	}
	tests := []struct {
		name, service, key, want string
	}{
		{"PUBLIC_URL", "edge", "PUBLIC_URL", "https://voice.example.com"},
		{"TWILIO_AUTH_TOKEN", "edge", "TWILIO_AUTH_TOKEN", "token-1"},
		{"TRUST_PROXY", "edge", "TRUST_PROXY", "true"},
		{"WORKER_CONCURRENCY", "worker", "WORKER_CONCURRENCY", "7"},
		{"DEFAULT_AUDIO/edge", "edge", "DEFAULT_AUDIO", "hello.mp3"},
		{"DEFAULT_AUDIO/worker", "worker", "DEFAULT_AUDIO", "hello.mp3"},
		{"DRAIN_TIMEOUT", "worker", "DRAIN_TIMEOUT", "12s"},
		{"LOG_LEVEL", "edge", "LOG_LEVEL", "debug"},
		{"LOG_FORMAT", "worker", "LOG_FORMAT", "text"},
	}
	for _, file := range []string{"docker-compose.yml", "docker-compose.cluster.yml"} {
		p := mustLoadCompose(t, env, file)
		for _, tc := range tests {
			t.Run(file+"/"+tc.name, func(t *testing.T) {
				if got := getenv(service(t, p, tc.service), tc.key); got != tc.want {
					t.Errorf("%s %s = %q, want %q", tc.service, tc.key, got, tc.want)
				}
			})
		}
		t.Run(file+"/EDGE_PORT", func(t *testing.T) {
			if ports := service(t, p, "edge").Ports; len(ports) != 1 || ports[0].Published != "9000" {
				t.Errorf("edge ports = %+v, want 9000 published", ports)
			}
		})
	}
}

func TestComposeAuth(t *testing.T) {
	for k, v := range authEnv {
		t.Setenv(k, v)
	}
	p := mustLoadCompose(t, authEnv, "docker-compose.yml", "docker-compose.auth.yml")
	opts, err := server.ProcessConfigFile(authConf)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for _, u := range opts.Users {
		users[u.Username] = u.Password
	}

	t.Run("nats/config", func(t *testing.T) {
		nats := service(t, p, "nats")
		i := slices.Index(nats.Command, "-c")
		if i < 0 || i+1 >= len(nats.Command) {
			t.Fatalf("command = %q, want -c <auth.conf>", nats.Command)
		}
		want, _ := filepath.Abs(authConf)
		v, ok := volumeAt(nats, nats.Command[i+1])
		if !ok || v.Source != want || !v.ReadOnly {
			t.Errorf("%s mounted from %+v, want %s read-only", nats.Command[i+1], v, authConf)
		}
		// Every variable auth.conf reads is in the server's environment.
		conf, err := os.ReadFile(authConf)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^[^#]*\$([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(conf), -1) {
			if got := getenv(nats, m[1]); got != authEnv[m[1]] {
				t.Errorf("nats %s = %q, want %q", m[1], got, authEnv[m[1]])
			}
		}
	})
	for _, tc := range []struct{ service, user string }{
		{"edge", "edge"},
		{"worker", "worker"},
	} {
		t.Run(tc.service+"/credentials", func(t *testing.T) {
			s := service(t, p, tc.service)
			if got := getenv(s, "NATS_USER"); got != tc.user {
				t.Errorf("NATS_USER = %q, want %q", got, tc.user)
			}
			pw, ok := users[tc.user]
			if !ok {
				t.Fatalf("auth.conf has no user %q", tc.user)
			}
			if got := getenv(s, "NATS_PASSWORD"); got == "" || got != pw {
				t.Errorf("NATS_PASSWORD = %q, want auth.conf's password of %q (%q)", got, tc.user, pw)
			}
		})
	}
	for _, missing := range slices.Sorted(maps.Keys(authEnv)) {
		t.Run("refuses without "+missing, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range authEnv {
				if k != missing {
					env[k] = v
				}
			}
			_, err := loadCompose(t, env, "docker-compose.yml", "docker-compose.auth.yml")
			if err == nil || !strings.Contains(err.Error(), missing) {
				t.Errorf("load without %s: err = %v, want one naming it", missing, err)
			}
		})
	}
}

// The subjects each NATS user may use: the README's Security section.
var (
	workerBuckets = []string{"callcast-audio", "callcast-cache"}
	authPublish   = map[string][]string{
		"edge": {"callcast.stream.started", "callcast.stream.*.events"},
		"worker": append([]string{"callcast.stream.*.out", "callcast.stream.*.events"},
			objectStoreSubjects(workerBuckets...)...),
		"producer": {"callcast.play", "callcast.stream.*.out",
			"$SRV.*", "$SRV.*.callcast-worker", "$SRV.*.callcast-worker.*"},
	}
	authSubscribe = map[string][]string{
		"edge": {"callcast.stream.*.out", "_INBOX.>"},
		"worker": {"callcast.stream.started callcast-workers", "callcast.play callcast-workers",
			"callcast.stream.*.events", "$SRV.>", "_INBOX.>"},
		"producer": {"callcast.stream.*.events", "_INBOX.>"},
	}
)

// objectStoreSubjects are the subjects a JetStream Object Store client
// publishes on for buckets (the bucket's stream is OBJ_<bucket>).
func objectStoreSubjects(buckets ...string) []string {
	var s []string
	for _, b := range buckets {
		st := "OBJ_" + b
		s = append(s,
			"$JS.API.STREAM.CREATE."+st,
			"$JS.API.STREAM.UPDATE."+st,
			"$JS.API.STREAM.INFO."+st,
			"$JS.API.STREAM.PURGE."+st,
			"$JS.API.STREAM.MSG.GET."+st,
			"$JS.API.DIRECT.GET."+st+".>",
			"$JS.API.CONSUMER.CREATE."+st+".>",
			"$JS.API.CONSUMER.DELETE."+st+".*",
			"$JS.FC."+st+".>",
			"$JS.FC.*.*."+st+".>",
			"$O."+b+".>",
		)
	}
	return s
}

func TestComposeNATSAuthConf(t *testing.T) {
	for k, v := range authEnv {
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile(authConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("server", func(t *testing.T) {
		if !opts.JetStream || opts.StoreDir != "/data" || opts.HTTPPort != 8222 || clientPort(opts) != 4222 {
			t.Errorf("jetstream %v store %q monitoring %d client %d; want true /data 8222 4222",
				opts.JetStream, opts.StoreDir, opts.HTTPPort, clientPort(opts))
		}
		if opts.NoAuthUser != "" || opts.Username != "" || opts.Authorization != "" || len(opts.Nkeys) != 0 {
			t.Error("auth.conf lets a client in other than as one of its users")
		}
	})
	byName := map[string]*server.User{}
	for _, u := range opts.Users {
		byName[u.Username] = u
	}
	if got := slices.Collect(maps.Keys(byName)); !sameSet(got, []string{"edge", "worker", "producer"}) {
		t.Fatalf("users = %v, want edge, worker, producer", got)
	}
	for _, tc := range []struct {
		user, env string
		responses bool
	}{
		{user: "edge", env: "NATS_EDGE_PASSWORD"},
		{user: "worker", env: "NATS_WORKER_PASSWORD", responses: true},
		{user: "producer", env: "NATS_PRODUCER_PASSWORD"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			u := byName[tc.user]
			if u.Password != authEnv[tc.env] {
				t.Errorf("password = %q, want $%s", u.Password, tc.env)
			}
			perm := u.Permissions
			if perm == nil || perm.Publish == nil || perm.Subscribe == nil {
				t.Fatalf("permissions = %+v, want publish and subscribe lists", perm)
			}
			if got := perm.Publish.Allow; !sameSet(got, authPublish[tc.user]) {
				t.Errorf("publish allow:\n got %q\nwant %q", got, authPublish[tc.user])
			}
			if got := perm.Subscribe.Allow; !sameSet(got, authSubscribe[tc.user]) {
				t.Errorf("subscribe allow:\n got %q\nwant %q", got, authSubscribe[tc.user])
			}
			if tc.responses != (perm.Response != nil) {
				t.Errorf("allow_responses = %+v, want %v", perm.Response, tc.responses)
			}
		})
	}
}

// TestComposeNATSAuthPasswords pins down which passwords auth.conf can take
// from the environment, as its comment documents.
func TestComposeNATSAuthPasswords(t *testing.T) {
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"documented form", "p9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822c", true},
		{"letters and digits", "Q7ts8mVw2LxE9pRa", true},
		{"base64 punctuation", "K3p/vz+QW1mOeB9d2hA0yZ4fLwXr8sUj=", true},
		{"dash and underscore", "edge-pass_2", true},
		{"number", "12345", false},
		{"size", "4e", false},
		{"boolean", "true", false},
		{"space", "two words", false},
		{"missing", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range authEnv {
				t.Setenv(k, v)
			}
			if tc.password == "" {
				os.Unsetenv("NATS_WORKER_PASSWORD") // t.Setenv restores it
			} else {
				t.Setenv("NATS_WORKER_PASSWORD", tc.password)
			}
			opts, err := processConfigFile(authConf)
			if !tc.ok {
				if err == nil {
					t.Errorf("password %q accepted", tc.password)
				}
				return
			}
			if err != nil {
				t.Fatalf("password %q: %v", tc.password, err)
			}
			for _, u := range opts.Users {
				if u.Username == "worker" && u.Password != tc.password {
					t.Errorf("worker password = %q, want %q", u.Password, tc.password)
				}
			}
		})
	}
}

// processConfigFile is server.ProcessConfigFile, turning the panic some bad
// values cause into an error.
func processConfigFile(path string) (opts *server.Options, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return server.ProcessConfigFile(path)
}

// runAuthNATS runs auth.conf in-process: JetStream in a temporary directory,
// no monitoring, clients on a random loopback port.
func runAuthNATS(t *testing.T) *server.Server {
	t.Helper()
	for k, v := range authEnv {
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile(authConf)
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPPort = 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats: not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

var authPasswords = map[string]string{
	"edge":     authEnv["NATS_EDGE_PASSWORD"],
	"worker":   authEnv["NATS_WORKER_PASSWORD"],
	"producer": authEnv["NATS_PRODUCER_PASSWORD"],
}

func connectAs(t *testing.T, ns *server.Server, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.UserInfo(user, authPasswords[user]),
		nats.Name("test-"+user), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func receive(t *testing.T, ch <-chan *nats.Msg, what string) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: nothing received", what)
		return nil
	}
}

// TestComposeNATSAuthPermissions runs every flow of the product through a
// server configured by auth.conf, as the user that does it in production,
// and checks that each user is refused what its role does not need.
func TestComposeNATSAuthPermissions(t *testing.T) {
	ns := runAuthNATS(t)
	edge := connectAs(t, ns, "edge")
	worker := connectAs(t, ns, "worker")
	producer := connectAs(t, ns, "producer")

	// The worker serves as internal/worker does: a micro service whose
	// endpoints take stream starts and play requests in the queue group.
	starts := make(chan *nats.Msg, 1)
	svc, err := micro.AddService(worker, micro.Config{
		Name: "callcast-worker", Version: "0.0.1", QueueGroup: "callcast-workers",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	if err := svc.AddEndpoint("stream-started", micro.HandlerFunc(func(r micro.Request) {
		starts <- &nats.Msg{Subject: r.Subject(), Data: r.Data()}
	}), micro.WithEndpointSubject("callcast.stream.started")); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddEndpoint("play", micro.HandlerFunc(func(r micro.Request) {
		_ = r.Respond(append([]byte("playing "), r.Data()...))
	}), micro.WithEndpointSubject("callcast.play")); err != nil {
		t.Fatal(err)
	}
	if err := worker.Flush(); err != nil {
		t.Fatal(err)
	}

	sub := func(t *testing.T, nc *nats.Conn, subject string) <-chan *nats.Msg {
		t.Helper()
		ch := make(chan *nats.Msg, 8)
		s, err := nc.ChanSubscribe(subject, ch)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Unsubscribe() })
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	pub := func(t *testing.T, nc *nats.Conn, subject, data string) {
		t.Helper()
		if err := nc.Publish(subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}

	allowed := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"edge starts a stream for one worker", func(t *testing.T) {
			pub(t, edge, "callcast.stream.started", "MZ1")
			if m := receive(t, starts, "stream start"); string(m.Data) != "MZ1" {
				t.Errorf("got %q", m.Data)
			}
		}},
		{"worker and producer send to the edge", func(t *testing.T) {
			out := sub(t, edge, "callcast.stream.*.out")
			pub(t, worker, "callcast.stream.MZ1.out", "media")
			receive(t, out, "worker media")
			pub(t, producer, "callcast.stream.MZ1.out", "clear")
			receive(t, out, "producer clear")
		}},
		{"edge and worker events reach workers and producers", func(t *testing.T) {
			wev := sub(t, worker, "callcast.stream.MZ1.events")
			pev := sub(t, producer, "callcast.stream.*.events")
			pub(t, edge, "callcast.stream.MZ1.events", "mark")
			receive(t, wev, "worker: edge event")
			receive(t, pev, "producer: edge event")
			pub(t, worker, "callcast.stream.MZ1.events", "playback")
			receive(t, wev, "worker: own event")
			receive(t, pev, "producer: worker event")
		}},
		{"producer asks a worker to play", func(t *testing.T) {
			m, err := producer.Request("callcast.play", []byte("sample.mp3"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Data) != "playing sample.mp3" {
				t.Errorf("reply %q", m.Data)
			}
		}},
		{"producer discovers workers", func(t *testing.T) {
			m, err := producer.Request("$SRV.PING.callcast-worker", nil, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var ping micro.Ping
			if err := json.Unmarshal(m.Data, &ping); err != nil || ping.Name != "callcast-worker" {
				t.Errorf("ping reply %s (%v)", m.Data, err)
			}
		}},
		{"worker uses the object store (nats.JetStreamContext)", func(t *testing.T) {
			js, err := worker.JetStream()
			if err != nil {
				t.Fatal(err)
			}
			for _, bucket := range workerBuckets {
				checkLegacyObjectStore(t, js, bucket)
			}
		}},
		{"worker uses the object store (jetstream)", func(t *testing.T) {
			js, err := jetstream.New(worker)
			if err != nil {
				t.Fatal(err)
			}
			for _, bucket := range workerBuckets {
				checkObjectStore(t, js, bucket)
			}
		}},
	}
	for _, tc := range allowed {
		t.Run("allows/"+tc.name, func(t *testing.T) {
			tc.run(t)
			for name, nc := range map[string]*nats.Conn{"edge": edge, "worker": worker, "producer": producer} {
				if err := nc.LastError(); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}

	denied := []struct {
		user string
		what string
		do   func(nc *nats.Conn) error
	}{
		{"edge", "play requests", publish("callcast.play")},
		{"edge", "sending audio", publish("callcast.stream.MZ1.out")},
		{"edge", "taking stream starts", queueSubscribe("callcast.stream.started", "callcast-workers")},
		{"edge", "reading events", subscribe("callcast.stream.MZ1.events")},
		{"edge", "JetStream", publish("$JS.API.INFO")},
		{"worker", "starting streams", publish("callcast.stream.started")},
		{"worker", "play requests", publish("callcast.play")},
		{"worker", "starts outside the queue group", subscribe("callcast.stream.started")},
		{"worker", "starts in another queue group", queueSubscribe("callcast.stream.started", "other")},
		{"worker", "plays outside the queue group", subscribe("callcast.play")},
		{"worker", "reading audio sent to edges", subscribe("callcast.stream.*.out")},
		{"worker", "replies nobody asked for", publish("_INBOX.abc")},
		{"worker", "deleting a bucket", publish("$JS.API.STREAM.DELETE.OBJ_callcast-audio")},
		{"worker", "other buckets", publish("$JS.API.STREAM.CREATE.OBJ_other")},
		{"worker", "other buckets' objects", publish("$O.other.C.x")},
		{"worker", "other streams", publish("$JS.API.STREAM.INFO.KV_config")},
		{"worker", "listing streams", publish("$JS.API.STREAM.LIST")},
		{"producer", "starting streams", publish("callcast.stream.started")},
		{"producer", "forging events", publish("callcast.stream.MZ1.events")},
		{"producer", "listening to calls", subscribe("callcast.stream.MZ1.out")},
		{"producer", "taking play requests", queueSubscribe("callcast.play", "callcast-workers")},
		{"producer", "taking stream starts", queueSubscribe("callcast.stream.started", "callcast-workers")},
		{"producer", "JetStream", publish("$JS.API.STREAM.CREATE.OBJ_callcast-audio")},
		{"producer", "the audio bucket", publish("$O.callcast-audio.C.x")},
	}
	for _, tc := range denied {
		t.Run("denies/"+tc.user+" "+tc.what, func(t *testing.T) {
			nc := connectAs(t, ns, tc.user) // a fresh connection: LastError is this case's
			if err := tc.do(nc); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			// The server answers the violation before the flush's PONG.
			if err := nc.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("last error = %v, want a permissions violation", err)
			}
		})
	}

	badLogins := []struct {
		name string
		opts []nats.Option
	}{
		{"anonymous", nil},
		{"wrong password", []nats.Option{nats.UserInfo("worker", authPasswords["edge"])}},
		{"unknown user", []nats.Option{nats.UserInfo("admin", authPasswords["edge"])}},
	}
	for _, tc := range badLogins {
		t.Run("refuses/"+tc.name, func(t *testing.T) {
			nc, err := nats.Connect(ns.ClientURL(), tc.opts...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("err = %v, want an authorization violation", err)
			}
		})
	}
}

func publish(subject string) func(*nats.Conn) error {
	return func(nc *nats.Conn) error { return nc.Publish(subject, []byte("x")) }
}

func subscribe(subject string) func(*nats.Conn) error {
	return func(nc *nats.Conn) error { _, err := nc.SubscribeSync(subject); return err }
}

func queueSubscribe(subject, queue string) func(*nats.Conn) error {
	return func(nc *nats.Conn) error { _, err := nc.QueueSubscribeSync(subject, queue); return err }
}

// objectSizes are a small object and one of many chunks, big enough for the
// ordered consumer reading it to need flow control.
var objectSizes = []int{1 << 10, 12 << 20}

func testObject(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func checkLegacyObjectStore(t *testing.T, js nats.JetStreamContext, bucket string) {
	t.Helper()
	if _, err := js.CreateObjectStore(&nats.ObjectStoreConfig{Bucket: bucket}); err != nil && !errors.Is(err, nats.ErrStreamNameAlreadyInUse) {
		t.Fatalf("%s: create: %v", bucket, err)
	}
	obs, err := js.ObjectStore(bucket)
	if err != nil {
		t.Fatalf("%s: open: %v", bucket, err)
	}
	for _, n := range objectSizes {
		name := fmt.Sprintf("legacy-%d.mp3", n)
		want := testObject(n)
		if _, err := obs.PutBytes(name, want); err != nil {
			t.Fatalf("%s: put %s: %v", bucket, name, err)
		}
		// Replacing purges the old chunks.
		if _, err := obs.PutBytes(name, want); err != nil {
			t.Fatalf("%s: replace %s: %v", bucket, name, err)
		}
		got, err := obs.GetBytes(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: get %s: %d bytes, %v", bucket, name, len(got), err)
		}
		if _, err := obs.GetInfo(name); err != nil {
			t.Fatalf("%s: info %s: %v", bucket, name, err)
		}
	}
	if list, err := obs.List(); err != nil || len(list) < len(objectSizes) {
		t.Fatalf("%s: list: %d objects, %v", bucket, len(list), err)
	}
	if _, err := obs.Status(); err != nil {
		t.Fatalf("%s: status: %v", bucket, err)
	}
	for _, n := range objectSizes {
		if err := obs.Delete(fmt.Sprintf("legacy-%d.mp3", n)); err != nil {
			t.Fatalf("%s: delete: %v", bucket, err)
		}
	}
}

func checkObjectStore(t *testing.T, js jetstream.JetStream, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
	if err != nil {
		t.Fatalf("%s: create or update: %v", bucket, err)
	}
	if obs, err = js.ObjectStore(ctx, bucket); err != nil {
		t.Fatalf("%s: open: %v", bucket, err)
	}
	for _, n := range objectSizes {
		name := fmt.Sprintf("js-%d.mp3", n)
		want := testObject(n)
		if _, err := obs.PutBytes(ctx, name, want); err != nil {
			t.Fatalf("%s: put %s: %v", bucket, name, err)
		}
		got, err := obs.GetBytes(ctx, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: get %s: %d bytes, %v", bucket, name, len(got), err)
		}
		if _, err := obs.GetInfo(ctx, name); err != nil {
			t.Fatalf("%s: info %s: %v", bucket, name, err)
		}
	}
	w, err := obs.Watch(ctx)
	if err != nil {
		t.Fatalf("%s: watch: %v", bucket, err)
	}
	defer w.Stop()
	if list, err := obs.List(ctx); err != nil || len(list) < len(objectSizes) {
		t.Fatalf("%s: list: %d objects, %v", bucket, len(list), err)
	}
	for _, n := range objectSizes {
		if err := obs.Delete(ctx, fmt.Sprintf("js-%d.mp3", n)); err != nil {
			t.Fatalf("%s: delete: %v", bucket, err)
		}
	}
}

// dockerfile is the Dockerfile as stages of instructions.
type dockerfile []dockerStage

type dockerStage struct {
	name, from string
	instrs     []dockerInstr
}

type dockerInstr struct{ cmd, args string }

func (d dockerfile) stage(name string) (dockerStage, bool) {
	for _, s := range d {
		if s.name == name {
			return s, true
		}
	}
	return dockerStage{}, false
}

func (s dockerStage) all(cmd string) []string {
	var args []string
	for _, in := range s.instrs {
		if in.cmd == cmd {
			args = append(args, in.args)
		}
	}
	return args
}

// exec returns the exec-form (JSON array) arguments of the stage's last cmd
// instruction; for HEALTHCHECK, those after CMD.
func (s dockerStage) exec(cmd string) []string {
	all := s.all(cmd)
	if len(all) == 0 {
		return []string{""}
	}
	args := all[len(all)-1]
	if i := strings.Index(args, "CMD "); cmd == "HEALTHCHECK" && i >= 0 {
		args = args[i+len("CMD "):]
	}
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil || len(v) == 0 {
		return []string{""}
	}
	return v
}

// parseDockerfile reads ./Dockerfile: comments dropped, continuation lines
// joined, instructions upper-cased.
func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		d    dockerfile
		line string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && line == "") {
			continue
		}
		if cont, ok := strings.CutSuffix(l, "\\"); ok {
			line += cont + " "
			continue
		}
		line += l
		cmd, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		line = ""
		cmd, args = strings.ToUpper(cmd), strings.Join(strings.Fields(args), " ")
		if cmd == "FROM" {
			var st dockerStage
			fields := strings.Fields(args)
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					st.name = fields[i+1]
					i++
				default:
					st.from = fields[i]
				}
			}
			d = append(d, st)
			continue
		}
		if len(d) == 0 {
			continue // ARG before the first FROM
		}
		d[len(d)-1].instrs = append(d[len(d)-1].instrs, dockerInstr{cmd, args})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestComposeDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	build, ok := df.stage("build")
	if !ok {
		t.Fatal("no build stage")
	}
	goBuild := ""
	for _, r := range build.all("RUN") {
		if strings.Contains(r, "go build") {
			goBuild = r
		}
	}

	t.Run("build/go version", func(t *testing.T) {
		mod, err := os.ReadFile("go.mod")
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
		if m == nil {
			t.Fatal("go.mod has no go line")
		}
		if want := "golang:" + string(m[1]); build.from != want && !strings.HasPrefix(build.from, want+"-") {
			t.Errorf("build FROM %s, want %s (go.mod's go %s)", build.from, want, m[1])
		}
	})
	t.Run("build/module layer first", func(t *testing.T) {
		var order []string
		for _, in := range build.instrs {
			switch {
			case in.cmd == "COPY" && in.args == "go.mod go.sum ./":
				order = append(order, "mod")
			case in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
				order = append(order, "download")
			case in.cmd == "COPY" && in.args == ". .":
				order = append(order, "source")
			}
		}
		if !slices.Equal(order, []string{"mod", "download", "source"}) {
			t.Errorf("order %v, want go.mod/go.sum, go mod download, then the source", order)
		}
	})
	t.Run("build/static binaries", func(t *testing.T) {
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`} {
			if !strings.Contains(goBuild, want) {
				t.Errorf("go build %q lacks %s", goBuild, want)
			}
		}
	})
	t.Run("build/every command", func(t *testing.T) {
		want := []string{"./cmd/edge", "./cmd/worker", "./cmd/callsim"}
		dirs, _ := filepath.Glob("cmd/*/main.go")
		for _, d := range dirs {
			want = append(want, "./"+filepath.Dir(d))
		}
		for _, pkg := range want {
			if !slices.Contains(strings.Fields(goBuild), pkg) {
				t.Errorf("go build %q does not build %s", goBuild, pkg)
			}
		}
	})

	for _, tc := range []struct {
		target, port string
	}{
		{"edge", "8080"},
		{"worker", "9090"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			st, ok := df.stage(tc.target)
			if !ok {
				t.Fatalf("no %q stage", tc.target)
			}
			if !strings.HasPrefix(st.from, "gcr.io/distroless/static") || !strings.HasSuffix(st.from, ":nonroot") {
				t.Errorf("FROM %s, want gcr.io/distroless/static...:nonroot", st.from)
			}
			user := st.all("USER")
			if len(user) == 0 || !slices.Contains([]string{"nonroot", "nonroot:nonroot", "65532", "65532:65532"}, user[len(user)-1]) {
				t.Errorf("USER %v, want nonroot", user)
			}
			if runs := st.all("RUN"); len(runs) != 0 {
				t.Errorf("RUN %q in a distroless stage: it has no shell", runs)
			}
			entry := st.exec("ENTRYPOINT")
			if !slices.Equal(entry, []string{"/" + tc.target}) {
				t.Errorf("ENTRYPOINT %q, want [\"/%s\"]", entry, tc.target)
			}
			if !slices.Contains(st.all("COPY"), "--from=build /out/"+tc.target+" "+entry[0]) {
				t.Errorf("COPY %q does not bring the %s binary from the build stage", st.all("COPY"), tc.target)
			}
			if hc := st.exec("HEALTHCHECK"); !slices.Equal(hc, []string{entry[0], "healthcheck"}) {
				t.Errorf("HEALTHCHECK CMD %q, want [%q \"healthcheck\"]", hc, entry[0])
			}
			if !slices.Contains(st.all("EXPOSE"), tc.port) {
				t.Errorf("EXPOSE %q, want %s", st.all("EXPOSE"), tc.port)
			}
			if env := strings.Join(st.all("ENV"), " "); !strings.Contains(env, "AUDIO_DIR=/audio") {
				t.Errorf("ENV %q lacks AUDIO_DIR=/audio", env)
			}
		})
	}
	t.Run("edge is the default target", func(t *testing.T) {
		if last := df[len(df)-1].name; last != "edge" {
			t.Errorf("last stage %q, want edge", last)
		}
	})
}

func TestComposeDockerignore(t *testing.T) {
	b, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(l, "/"))
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, path); ok {
				return true
			}
			if ok, _ := filepath.Match(strings.TrimPrefix(p, "**/"), filepath.Base(path)); ok && strings.HasPrefix(p, "**/") {
				return true
			}
		}
		return false
	}
	tests := []struct {
		path    string
		ignored bool
	}{
		{"go.mod", false},
		{"go.sum", false},
		{"cmd", false},
		{"internal", false},
		{"audio", false},
		{".git", true},
		{".env", true},
		{"bin", true},
		{"edge.test", true},
		{"internal/audio/mulaw_test.go", true},
		{"docker-compose.yml", true},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := ignored(tc.path); got != tc.ignored {
				t.Errorf("ignored = %v, want %v", got, tc.ignored)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}
