// Tests of the container files: Dockerfile, .dockerignore, the compose files
// and deploy/nats/auth.conf. The compose files are loaded with the Compose
// Specification's reference loader (compose-go), the NATS server commands and
// configuration are parsed with nats-server's own parsers, and the
// permissions in auth.conf are exercised against an in-process NATS server.
// Nothing here needs Docker or a network. The tests run from the repository
// root (TestMain), where docker compose is run and the files' paths start.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/callcast/callcast/client"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/library"
	"github.com/callcast/callcast/internal/worker"
)

const authConf = "deploy/nats/auth.conf"

// TestMain runs the tests from the repository root, where the compose files
// are and docker compose resolves their relative paths.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

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
		"LIBRARY_MAX_BYTES":  "1000000",
		"CACHE_MAX_BYTES":    "2000000",
		"NATS_REPLICAS":      "3",
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
		{"LIBRARY_MAX_BYTES", "worker", "LIBRARY_MAX_BYTES", "1000000"},
		{"CACHE_MAX_BYTES", "worker", "CACHE_MAX_BYTES", "2000000"},
		{"NATS_REPLICAS", "worker", "NATS_REPLICAS", "3"},
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
	workerService = []string{"$SRV.PING", "$SRV.INFO", "$SRV.STATS", "$SRV.*.callcast-worker", "$SRV.*.callcast-worker.*"}
	authPublish   = map[string][]string{
		"edge": {"callcast.stream.started", "callcast.stream.*.events", "callcast.render", "callcast.stream.*.in"},
		"worker": append([]string{"callcast.stream.*.out", "callcast.stream.*.events", "callcast.stream.*.play", "callcast.edge.*.alive"},
			objectStoreSubjects(workerBuckets...)...),
		"producer": append([]string{"callcast.play", "callcast.stream.*.out", "callcast.stream.*.listen", "callcast.calls", "callcast.playback.*.audio"}, workerService...),
	}
	authSubscribe = map[string][]string{
		"edge": {"callcast.stream.*.out", "callcast.stream.*.play", "callcast.edge.*.alive", "_INBOX_callcast_edge.>", "callcast.stream.*.listen", "callcast.calls", "callcast.playback.*.audio", "$O.callcast-audio.M.>"},
		"worker": append([]string{"callcast.stream.started callcast-workers", "callcast.play callcast-workers",
			"callcast.render callcast-workers", "callcast.stream.*.events", "_INBOX_callcast_worker.>"}, workerService...),
		"producer": {"callcast.stream.*.events", "_INBOX.>", "callcast.stream.*.in"},
	}
	// authResponds are the users that answer requests (allow_responses)
	// and how many replies each may send to one request, -1 for no count:
	// an edge answers callcast.calls in pages of at most 1000 calls, and
	// tells a worker's attempt to stop on the reply subject of its frames,
	// every one of which NATS counts against that subject's replies.
	authResponds = map[string]int{"edge": -1, "worker": 1}
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
	for _, tc := range []struct{ user, env string }{
		{user: "edge", env: "NATS_EDGE_PASSWORD"},
		{user: "worker", env: "NATS_WORKER_PASSWORD"},
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
			if want := authResponds[tc.user]; (want != 0) != (perm.Response != nil) {
				t.Errorf("allow_responses = %+v, want %d replies", perm.Response, want)
			} else if want != 0 && (perm.Response.MaxMsgs != want || perm.Response.Expires > 2*time.Minute) {
				t.Errorf("allow_responses = %+v, want %d replies per request, within two minutes", perm.Response, want)
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
	return calltest.StartNATS(t, opts)
}

var authPasswords = map[string]string{
	"edge":     authEnv["NATS_EDGE_PASSWORD"],
	"worker":   authEnv["NATS_WORKER_PASSWORD"],
	"producer": authEnv["NATS_PRODUCER_PASSWORD"],
}

// authInbox is the inbox prefix each role's connections use, as the edge
// and the worker set it (bus.ConnOptions.InboxPrefix); producers keep
// NATS's default.
var authInbox = map[string]string{"edge": bus.InboxEdge, "worker": bus.InboxWorker, "producer": nats.InboxPrefix[:len(nats.InboxPrefix)-1]}

func connectAs(t *testing.T, ns *server.Server, user string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.UserInfo(user, authPasswords[user]),
		nats.CustomInboxPrefix(authInbox[user]),
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
	producer := connectAs(t, ns, "producer")

	// Two workers, as with --scale worker=2: each its own connection and
	// its own instance of the callcast-worker service (see serveWorker).
	starts := make(chan *nats.Msg, 2)
	renders := make(chan string, 16)
	workers := map[string]*nats.Conn{}
	for _, name := range []string{"worker-1", "worker-2"} {
		workers[name] = connectAs(t, ns, "worker")
		serveWorker(t, workers[name], name, starts, renders)
	}
	worker := workers["worker-1"]

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
			frame := &nats.Msg{Subject: "callcast.stream.MZ1.out", Header: nats.Header{}, Data: []byte("media")}
			frame.Header.Set("Callcast-Playback", "p1/0")
			if err := worker.PublishMsg(frame); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, out, "worker media"); m.Header.Get("Callcast-Playback") != "p1/0" {
				t.Errorf("worker frame headers %v, want Callcast-Playback: p1/0", m.Header)
			}
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
		{"producer takes a lease on a call's audio and hears the caller", func(t *testing.T) {
			s, err := edge.Subscribe("callcast.stream.MZ1.listen", func(m *nats.Msg) {
				_ = m.Respond([]byte(`{"leaseMs":10000}`))
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Unsubscribe() })
			if err := edge.Flush(); err != nil {
				t.Fatal(err)
			}
			in := sub(t, producer, "callcast.stream.*.in")
			if _, err := producer.Request("callcast.stream.MZ1.listen", nil, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			audio := &nats.Msg{Subject: "callcast.stream.MZ1.in", Header: nats.Header{}, Data: []byte{0xFF, 0x7F}}
			audio.Header.Set("Callcast-Seq", "1")
			audio.Header.Set("Callcast-Timestamp", "0")
			if err := edge.PublishMsg(audio); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, in, "caller audio"); m.Header.Get("Callcast-Seq") != "1" {
				t.Errorf("caller audio headers %v", m.Header)
			}
		}},
		{"producer asks a worker to play, which queues it on the edge", func(t *testing.T) {
			// The edge holding MZ1 takes its playbacks, with no queue group.
			s, err := edge.Subscribe("callcast.stream.MZ1.play", func(m *nats.Msg) {
				_ = m.Respond(append([]byte("queued "), m.Data...))
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Unsubscribe() })
			if err := edge.Flush(); err != nil {
				t.Fatal(err)
			}
			m, err := producer.Request("callcast.play", []byte("MZ1"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Data) != "queued MZ1" || m.Header.Get(micro.ErrorCodeHeader) != "" {
				t.Errorf("reply %q %v, want the edge's %q", m.Data, m.Header, "queued MZ1")
			}
		}},
		{"worker learns no edge holds a stream", func(t *testing.T) {
			// No responders, at once: the request itself was allowed (a
			// refused one would time out).
			_, err := worker.Request("callcast.stream.MZ9.play", []byte("MZ9"), 5*time.Second)
			if !errors.Is(err, nats.ErrNoResponders) {
				t.Errorf("err = %v, want no responders", err)
			}
			m, err := producer.Request("callcast.play", []byte("MZ9"), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if code := m.Header.Get(micro.ErrorCodeHeader); code != "404" {
				t.Errorf("reply %q %v, want error 404", m.Data, m.Header)
			}
		}},
		{"worker probes an edge, and learns when it is gone", func(t *testing.T) {
			// What a worker's edge watch does: publish with a reply subject
			// in its inbox; NATS answers 503 there only once no edge
			// subscription is left.
			s, err := edge.Subscribe("callcast.edge.E1.alive", func(*nats.Msg) {})
			if err != nil {
				t.Fatal(err)
			}
			if err := edge.Flush(); err != nil {
				t.Fatal(err)
			}
			inbox := worker.NewInbox()
			answers := sub(t, worker, inbox)
			probe := func() {
				t.Helper()
				if err := worker.PublishMsg(&nats.Msg{Subject: "callcast.edge.E1.alive", Reply: inbox}); err != nil {
					t.Fatal(err)
				}
				if err := worker.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			probe()
			select {
			case m := <-answers:
				t.Fatalf("answer %v while the edge is there", m.Header)
			case <-time.After(100 * time.Millisecond):
			}
			if err := s.Unsubscribe(); err != nil {
				t.Fatal(err)
			}
			if err := edge.Flush(); err != nil {
				t.Fatal(err)
			}
			probe()
			if m := receive(t, answers, "no responders"); m.Header.Get("Status") != "503" {
				t.Errorf("answer %v, want status 503", m.Header)
			}
		}},
		{"edge hands playbacks to one worker of the queue group", func(t *testing.T) {
			out := sub(t, edge, "callcast.stream.MZ2.out")
			const n = 6
			for i := range n {
				m, err := edge.Request("callcast.render", []byte("MZ2"), 5*time.Second)
				if err != nil {
					t.Fatalf("render %d: %v", i, err)
				}
				by := string(m.Data)
				if workers[by] == nil {
					t.Fatalf("render %d: reply %q, want a worker's name", i, by)
				}
				select {
				case got := <-renders:
					if got != by {
						t.Errorf("render %d taken by %s, answered by %s", i, got, by)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("render %d answered by %s, taken by none", i, by)
				}
				if f := receive(t, out, "rendered audio"); f.Header.Get("Callcast-Playback") != by {
					t.Errorf("render %d: frame from %q, want %q", i, f.Header.Get("Callcast-Playback"), by)
				}
			}
			// Each was taken once: nothing more arrives once every worker
			// has caught up with the server.
			for _, nc := range workers {
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case by := <-renders:
				t.Errorf("a render was taken twice (again by %s)", by)
			case f := <-out:
				t.Errorf("extra frame %v", f.Header)
			default:
			}
		}},
		{"producer streams a playback's audio to the edge playing it", func(t *testing.T) {
			audio := sub(t, edge, "callcast.playback.P1.audio")
			chunk := &nats.Msg{Subject: "callcast.playback.P1.audio", Header: nats.Header{}, Data: []byte{0xFF, 0x7F}}
			chunk.Header.Set("Callcast-Seq", "1")
			chunk.Header.Set("Callcast-End", "true")
			if err := producer.PublishMsg(chunk); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, audio, "streamed audio"); m.Header.Get("Callcast-Seq") != "1" || len(m.Data) != 2 {
				t.Errorf("chunk %v %x", m.Header, m.Data)
			}
		}},
		{"edge tells a superseded worker attempt to stop", func(t *testing.T) {
			// A worker's frames carry a reply subject in its inbox; the edge
			// answers there (allow_responses) when it has moved the
			// playback on.
			out := sub(t, edge, "callcast.stream.MZ3.out")
			inbox := worker.NewInbox()
			stops := sub(t, worker, inbox)
			if err := worker.PublishMsg(&nats.Msg{Subject: "callcast.stream.MZ3.out", Reply: inbox, Data: []byte("frame")}); err != nil {
				t.Fatal(err)
			}
			f := receive(t, out, "a worker's frame")
			if err := edge.PublishMsg(&nats.Msg{Subject: f.Reply, Header: nats.Header{"Callcast-Stop": {"P1/0"}}}); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, stops, "the stop"); m.Header.Get("Callcast-Stop") != "P1/0" {
				t.Errorf("stop %v", m.Header)
			}
			// Every frame of an attempt has the same reply subject, and
			// NATS counts each one delivered, as each reply, against that
			// subject's replies: 15 more frames and the stop above would
			// spend a budget of 16, yet the next stop goes.
			for range 15 {
				if err := worker.PublishMsg(&nats.Msg{Subject: "callcast.stream.MZ3.out", Reply: inbox, Data: []byte("frame")}); err != nil {
					t.Fatal(err)
				}
				receive(t, out, "a worker's frame")
			}
			if err := edge.PublishMsg(&nats.Msg{Subject: inbox, Header: nats.Header{"Callcast-Stop": {"P1/1"}}}); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, stops, "the stop after 16 frames"); m.Header.Get("Callcast-Stop") != "P1/1" {
				t.Errorf("stop %v", m.Header)
			}
		}},
		{"producer lists the live calls: every edge answers, in pages", func(t *testing.T) {
			edge2 := connectAs(t, ns, "edge")
			for i, nc := range []*nats.Conn{edge, edge2} {
				s, err := nc.Subscribe("callcast.calls", func(m *nats.Msg) {
					for page := range 1 + i { // the second edge answers in two pages
						_ = m.Respond([]byte(fmt.Sprintf("edge %d page %d", i, page)))
					}
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Unsubscribe() })
				if err := nc.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			inbox := producer.NewInbox()
			replies := sub(t, producer, inbox)
			if err := producer.PublishRequest("callcast.calls", inbox, nil); err != nil {
				t.Fatal(err)
			}
			var got []string
			for range 3 {
				got = append(got, string(receive(t, replies, "calls reply").Data))
			}
			if !sameSet(got, []string{"edge 0 page 0", "edge 1 page 0", "edge 1 page 1"}) {
				t.Errorf("replies %q", got)
			}
			if err := edge2.LastError(); err != nil {
				t.Errorf("edge: %v", err)
			}
		}},
		{"producer discovers workers", func(t *testing.T) {
			m, err := producer.Request("$SRV.PING.callcast-worker", nil, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			var ping micro.Ping
			if err := json.Unmarshal(m.Data, &ping); err != nil || ping.Name != "callcast-worker" {
				t.Fatalf("ping reply %s (%v)", m.Data, err)
			}
			// Every verb, of all services, of callcast-worker and of the
			// instance that answered.
			for _, verb := range []string{"PING", "INFO", "STATS"} {
				for _, subject := range []string{"$SRV." + verb, "$SRV." + verb + ".callcast-worker", "$SRV." + verb + ".callcast-worker." + ping.ID} {
					m, err := producer.Request(subject, nil, 5*time.Second)
					if err != nil {
						t.Errorf("%s: %v", subject, err)
						continue
					}
					var reply struct{ Name, ID string }
					if err := json.Unmarshal(m.Data, &reply); err != nil || reply.Name != "callcast-worker" {
						t.Errorf("%s: reply %s (%v)", subject, m.Data, err)
					}
				}
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
		{"worker manages the library as `worker library` and the workers do", func(t *testing.T) {
			checkLibrary(t, worker)
		}},
	}
	for _, tc := range allowed {
		t.Run("allows/"+tc.name, func(t *testing.T) {
			tc.run(t)
			conns := map[string]*nats.Conn{"edge": edge, "producer": producer}
			maps.Copy(conns, workers)
			for name, nc := range conns {
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
		{"edge", "queueing playbacks as a worker", publish("callcast.stream.MZ1.play")},
		{"edge", "taking stream starts", queueSubscribe("callcast.stream.started", "callcast-workers")},
		{"edge", "taking render requests", queueSubscribe("callcast.render", "callcast-workers")},
		{"edge", "reading events", subscribe("callcast.stream.MZ1.events")},
		{"edge", "replies nobody asked for", publish("_INBOX.abc")},
		{"edge", "into a worker's inbox unasked", publish("_INBOX_callcast_worker.W1.T1")},
		{"edge", "reading producers' replies", subscribe("_INBOX.>")},
		{"edge", "reading workers' replies", subscribe("_INBOX_callcast_worker.>")},
		{"edge", "probing edges", publish("callcast.edge.E1.alive")},
		{"edge", "service discovery", publish("$SRV.PING")},
		{"edge", "JetStream", publish("$JS.API.INFO")},
		{"edge", "listing calls", publish("callcast.calls")},
		{"worker", "starting streams", publish("callcast.stream.started")},
		{"worker", "play requests", publish("callcast.play")},
		{"worker", "render requests", publish("callcast.render")},
		{"worker", "starts outside the queue group", subscribe("callcast.stream.started")},
		{"worker", "starts in another queue group", queueSubscribe("callcast.stream.started", "other")},
		{"worker", "plays outside the queue group", subscribe("callcast.play")},
		{"worker", "renders outside the queue group", subscribe("callcast.render")},
		{"worker", "renders in another queue group", queueSubscribe("callcast.render", "other")},
		{"worker", "taking playbacks queued on an edge", subscribe("callcast.stream.*.play")},
		{"worker", "reading audio sent to edges", subscribe("callcast.stream.*.out")},
		{"worker", "every service's discovery", subscribe("$SRV.>")},
		{"worker", "another service's discovery", subscribe("$SRV.PING.other")},
		{"worker", "unknown discovery verbs", subscribe("$SRV.*")},
		{"worker", "replies nobody asked for", publish("_INBOX.abc")},
		{"worker", "reading producers' replies", subscribe("_INBOX.>")},
		{"worker", "reading edges' replies", subscribe("_INBOX_callcast_edge.>")},
		{"worker", "posing as an edge", subscribe("callcast.edge.*.alive")},
		{"worker", "deleting a bucket", publish("$JS.API.STREAM.DELETE.OBJ_callcast-audio")},
		{"worker", "other buckets", publish("$JS.API.STREAM.CREATE.OBJ_other")},
		{"worker", "other buckets' objects", publish("$O.other.C.x")},
		{"worker", "other streams", publish("$JS.API.STREAM.INFO.KV_config")},
		{"worker", "listing streams", publish("$JS.API.STREAM.LIST")},
		{"worker", "account-wide JetStream information", publish("$JS.API.INFO")},
		{"worker", "deleting single messages", publish("$JS.API.STREAM.MSG.DELETE.OBJ_callcast-audio")},
		{"worker", "purging other streams", publish("$JS.API.STREAM.PURGE.KV_config")},
		{"worker", "reading other buckets' objects", publish("$JS.API.DIRECT.GET.OBJ_other.$O.other.M.eA==")},
		{"worker", "consumers on other streams", publish("$JS.API.CONSUMER.CREATE.KV_config.c1")},
		{"worker", "listing calls", publish("callcast.calls")},
		{"worker", "answering for an edge's calls", subscribe("callcast.calls")},
		{"worker", "streaming into a playback", publish("callcast.playback.p1.audio")},
		{"worker", "reading producers' streams", subscribe("callcast.playback.*.audio")},
		{"edge", "streaming into a playback", publish("callcast.playback.p1.audio")},
		{"producer", "starting streams", publish("callcast.stream.started")},
		{"producer", "forging events", publish("callcast.stream.MZ1.events")},
		{"producer", "listening to a call", subscribe("callcast.stream.MZ1.out")},
		{"producer", "listening to every call", subscribe("callcast.stream.*.out")},
		{"producer", "render requests", publish("callcast.render")},
		{"producer", "forging caller audio", publish("callcast.stream.MZ1.in")},
		{"producer", "posing as an edge to listeners", subscribe("callcast.stream.*.listen")},
		{"worker", "listening to callers", subscribe("callcast.stream.*.in")},
		{"edge", "taking leases from other edges", publish("callcast.stream.MZ1.listen")},
		{"producer", "queueing on an edge past the workers", publish("callcast.stream.MZ1.play")},
		{"producer", "taking playbacks queued on an edge", subscribe("callcast.stream.*.play")},
		{"producer", "taking play requests", queueSubscribe("callcast.play", "callcast-workers")},
		{"producer", "taking render requests", queueSubscribe("callcast.render", "callcast-workers")},
		{"producer", "taking stream starts", queueSubscribe("callcast.stream.started", "callcast-workers")},
		{"producer", "replies nobody asked for", publish("_INBOX.abc")},
		{"producer", "reading edges' replies", subscribe("_INBOX_callcast_edge.>")},
		{"producer", "reading workers' replies", subscribe("_INBOX_callcast_worker.>")},
		{"producer", "posing as an edge", subscribe("callcast.edge.E1.alive")},
		{"producer", "probing edges", publish("callcast.edge.E1.alive")},
		{"producer", "another service's discovery", publish("$SRV.PING.other")},
		{"producer", "JetStream", publish("$JS.API.STREAM.CREATE.OBJ_callcast-audio")},
		{"producer", "the audio bucket", publish("$O.callcast-audio.C.x")},
		{"producer", "answering for an edge's calls", subscribe("callcast.calls")},
		{"producer", "reading other producers' streams", subscribe("callcast.playback.*.audio")},
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

	// allow_responses bounds the replies to a request: one for a worker
	// (one more is refused); for an edge, which has no count, the pages of
	// a long callcast.calls answer go. Each case has a server of its own,
	// where no other worker takes the request.
	for _, tc := range []struct{ requester, responder, subject, queue string }{
		{"worker", "edge", "callcast.stream.MZ3.play", ""},
		{"producer", "edge", "callcast.calls", ""},
		{"edge", "worker", "callcast.render", "callcast-workers"},
	} {
		t.Run("replies/"+tc.responder+" to "+tc.subject+": as many as allowed", func(t *testing.T) {
			ns := runAuthNATS(t)
			req, resp := connectAs(t, ns, tc.requester), connectAs(t, ns, tc.responder)
			s, err := resp.QueueSubscribeSync(tc.subject, tc.queue)
			if err != nil {
				t.Fatal(err)
			}
			if err := resp.Flush(); err != nil {
				t.Fatal(err)
			}
			inbox := req.NewInbox() // under the requester's own prefix
			replies, err := req.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			if err := req.PublishRequest(tc.subject, inbox, []byte("MZ3")); err != nil {
				t.Fatal(err)
			}
			m, err := s.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			allowed := authResponds[tc.responder]
			if allowed < 0 {
				allowed = 40 // pages; none refused
			}
			for i := range allowed {
				reply := fmt.Sprintf("reply %d", i+1)
				if err := m.Respond([]byte(reply)); err != nil {
					t.Fatal(err)
				}
				if err := resp.Flush(); err != nil {
					t.Fatal(err)
				}
				if err := resp.LastError(); err != nil {
					t.Fatalf("%s: %v", reply, err)
				}
				if r, err := replies.NextMsg(5 * time.Second); err != nil || string(r.Data) != reply {
					t.Fatalf("%s: %v %v", reply, r, err)
				}
			}
			if authResponds[tc.responder] < 0 {
				return
			}
			if err := m.Respond([]byte("one too many")); err != nil {
				t.Fatal(err)
			}
			if err := resp.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := resp.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("reply %d: last error = %v, want a permissions violation", allowed+1, err)
			}
		})
	}

	// A worker that takes replies under NATS's own inbox prefix (as `worker
	// upload` once did) is refused, and the library says which permission.
	t.Run("denies/worker replies under _INBOX to the audio library", func(t *testing.T) {
		nc, err := nats.Connect("", nats.InProcessServer(ns), nats.UserInfo("worker", authPasswords["worker"]),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lib, err := library.New(ctx, library.Options{JS: js, MemoryBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer lib.Close()
		if err := lib.Bind(ctx); err == nil {
			t.Fatal("bound the buckets through _INBOX")
		}
		if err := nc.LastError(); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("last error = %v, want a permissions violation", err)
		}
	})

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

// TestComposeNATSAuthProduct runs an edge and two workers as the containers
// of docker-compose.auth.yml do (edge.Run and worker.Run, logged in as
// auth.conf's users edge and worker), places a call with the Twilio
// stand-in and plays into it as user producer. Every subject the code uses
// must be allowed: a refused one shows as a permissions violation in the
// logs, or as a playback that never finishes.
func TestComposeNATSAuthProduct(t *testing.T) {
	ns := runAuthNATS(t)
	logs := &calltest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	audioDir := t.TempDir()
	calltest.WriteFile(t, filepath.Join(audioDir, "tone.wav"), calltest.MulawWAV(2*time.Second))
	natsAs := func(user string) bus.ConnOptions {
		return bus.ConnOptions{URL: ns.ClientURL(), User: user, Password: authPasswords[user]}
	}

	// run runs a process's Run until the test ends; it returns once the
	// process is serving.
	run := func(name string, f func(ctx context.Context, ready func(net.Addr)) error) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		ready, done := make(chan struct{}), make(chan error, 1)
		go func() { done <- f(ctx, func(net.Addr) { close(ready) }) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("%s: %v", name, err)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not serving", name)
		}
	}
	for i := range 2 {
		id := fmt.Sprintf("worker-%d", i+1)
		run(id, func(ctx context.Context, ready func(net.Addr)) error {
			return worker.Run(ctx, worker.RunOptions{
				NATS:   natsAs("worker"),
				Worker: worker.Config{AudioDir: audioDir, DefaultAudio: "tone.wav", ID: id},
				Ready:  ready, DrainTimeout: 5 * time.Second, Logger: log.With("process", id),
			})
		})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	run("edge", func(ctx context.Context, ready func(net.Addr)) error {
		return edge.Run(ctx, edge.Options{
			// With its audio cache, which listens for library changes.
			Listener: ln, NATS: natsAs("edge"), Edge: edge.Config{ID: "edge-1", AudioCacheBytes: 1 << 20},
			Ready: ready, DrainTimeout: 5 * time.Second, Logger: log.With("process", "edge"),
		})
	})
	wsURL := "ws://" + ln.Addr().String() + edge.PathMediaStream

	producer := connectAs(t, ns, "producer")
	const sid = "MZ00000000000000000000000000auth01"
	events := make(chan *nats.Msg, 1024)
	evSub, err := producer.ChanSubscribe(bus.StreamEvents("*"), events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = evSub.Unsubscribe() })
	if err := producer.Flush(); err != nil {
		t.Fatal(err)
	}
	// waitEvent returns the next event of kind on stream sid (for playback
	// id, if set).
	waitEvent := func(t *testing.T, sid, kind, id string) bus.Event {
		t.Helper()
		deadline := time.After(30 * time.Second)
		var seen []string
		for {
			select {
			case m := <-events:
				ev, err := bus.DecodeEvent(m.Data)
				if err != nil {
					t.Fatalf("event %s: %v", m.Data, err)
				}
				if ev.StreamSid != sid {
					continue
				}
				seen = append(seen, ev.Event)
				if ev.Event == kind && (id == "" || ev.Playback != nil && ev.Playback.ID == id) {
					return *ev
				}
				if ev.Event == bus.EventPlaybackFailed {
					t.Fatalf("waiting for %s: playback failed: %+v", kind, ev.Error)
				}
			case <-deadline:
				t.Fatalf("no %s event (playback %q); saw %v", kind, id, seen)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	call, err := callsim.Dial(ctx, callsim.Config{
		URL: wsURL, StreamSid: sid, Parameters: map[string]string{"audio": "tone.wav"}, Speed: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = call.Close() })

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"the call's own audio starts", func(t *testing.T) {
			// edge → callcast.stream.started → worker → .play → edge →
			// callcast.render → worker → .out with headers → edge → Twilio.
			waitEvent(t, sid, bus.EventPlaybackStarted, "")
		}},
		{"a producer's playback interrupts it and plays out", func(t *testing.T) {
			// producer → callcast.play → worker → .play → edge, which
			// interrupts, clears and renders; Twilio's marks come back as
			// events that the worker paces by and the producer follows.
			m, err := producer.Request(bus.SubjectPlay, []byte(`{"streamSid":"`+sid+`","audio":"tone.wav","mode":"interrupt"}`), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			reply, err := bus.DecodePlayReply(m.Data)
			if err != nil || reply.Error != nil || reply.PlaybackID == "" {
				t.Fatalf("play reply %s (%v)", m.Data, err)
			}
			waitEvent(t, sid, bus.EventPlaybackFinished, reply.PlaybackID)
		}},
		{"a producer clears the call", func(t *testing.T) {
			if err := producer.Publish(bus.StreamOut(sid), []byte(`{"event":"clear"}`)); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, sid, bus.EventClear, "")
		}},
		{"a play request for no live call is refused at once", func(t *testing.T) {
			// The worker's request to the stream's .play subject finds no
			// edge; a refused publish would time out instead.
			m, err := producer.Request(bus.SubjectPlay, []byte(`{"streamSid":"MZnone","audio":"tone.wav"}`), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if reply, err := bus.DecodePlayReply(m.Data); err != nil || reply.Error == nil || reply.Error.Code != bus.CodeUnknownStream {
				t.Errorf("play reply %s (%v), want %s", m.Data, err, bus.CodeUnknownStream)
			}
		}},
		{"a producer finds both workers", func(t *testing.T) {
			inbox := producer.NewInbox()
			replies, err := producer.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			defer replies.Unsubscribe()
			if err := producer.PublishRequest("$SRV.INFO."+worker.ServiceName, inbox, nil); err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			for len(ids) < 2 {
				m, err := replies.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("after %d replies: %v", len(ids), err)
				}
				var info micro.Info
				if err := json.Unmarshal(m.Data, &info); err != nil || info.Name != worker.ServiceName {
					t.Fatalf("info %s (%v)", m.Data, err)
				}
				ids[info.ID] = true
			}
		}},
		{"a producer lists the live calls", func(t *testing.T) {
			// producer → callcast.calls → the edge, which answers.
			calls, err := client.New(producer, client.Options{}).Calls(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(calls) != 1 || calls[0].StreamSid != sid || calls[0].Edge != "edge-1" || calls[0].Parameters["audio"] != "tone.wav" {
				t.Errorf("calls %+v, want %s on edge-1", calls, sid)
			}
		}},
		{"a producer streams its own audio through the client", func(t *testing.T) {
			// producer → callcast.play with a stream → worker → .play →
			// edge, which subscribes to the playback's audio subject;
			// producer → callcast.playback.<id>.audio → edge → Twilio.
			c := client.New(producer, client.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			evs, err := c.Events(ctx, sid)
			if err != nil {
				t.Fatal(err)
			}
			defer evs.Close()
			w, err := c.Stream(ctx, sid, client.Mulaw, client.PlayOptions{Mode: client.Interrupt})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(bytes.Repeat([]byte{0xff}, 4000)); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if end, err := evs.WaitPlayback(ctx, w.Playback().ID); err != nil || end.Playback.HeardMs != 500 {
				t.Fatalf("stream ended with %+v: %v, want 500 ms heard", end.Playback, err)
			}
		}},
		{"a call naming missing audio is told so", func(t *testing.T) {
			// The worker publishes the playback.failed event itself.
			const sid = "MZ00000000000000000000000000auth02"
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			other, err := callsim.Dial(ctx, callsim.Config{
				URL: wsURL, StreamSid: sid, Parameters: map[string]string{"audio": "missing.wav"},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			ev := waitEvent(t, sid, bus.EventPlaybackFailed, "")
			if ev.Error == nil || ev.Error.Code != bus.CodeUnknownAudio {
				t.Errorf("playback.failed error %+v, want %s", ev.Error, bus.CodeUnknownAudio)
			}
		}},
		{"hanging up ends the stream", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := call.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			waitEvent(t, sid, bus.EventStop, "")
		}},
	}
	for _, st := range steps {
		if !t.Run(st.name, st.run) {
			break
		}
	}

	if err := producer.LastError(); err != nil {
		t.Errorf("producer: %v", err)
	}
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(strings.ToLower(l), "permissions violation") {
			t.Errorf("logged: %s", l)
		}
	}
	if errs := call.Errs(); len(errs) != 0 {
		t.Errorf("Twilio protocol violations: %v", errs)
	}
}

// serveWorker adds an instance of the callcast-worker micro service on nc,
// its endpoints in the callcast-workers queue group as internal/worker's
// are. Each takes a stream SID as data: stream-started sends the start to
// starts; play queues the playback on the edge holding the stream
// (callcast.stream.<sid>.play) and relays the edge's reply, or error 404 when
// none holds it; render answers with name, sends name to renders, then sends
// the audio to the edge with the Callcast-Playback header.
func serveWorker(t *testing.T, nc *nats.Conn, name string, starts chan<- *nats.Msg, renders chan<- string) {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{
		Name: "callcast-worker", Version: "0.0.1", QueueGroup: "callcast-workers",
		Metadata: map[string]string{"worker": name},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	endpoints := []struct {
		name, subject string
		handler       micro.HandlerFunc
	}{
		{"stream-started", "callcast.stream.started", func(r micro.Request) {
			starts <- &nats.Msg{Subject: r.Subject(), Data: r.Data()}
		}},
		{"play", "callcast.play", func(r micro.Request) {
			m, err := nc.Request("callcast.stream."+string(r.Data())+".play", r.Data(), 5*time.Second)
			switch {
			case errors.Is(err, nats.ErrNoResponders):
				_ = r.Error("404", "no edge holds the stream", nil)
			case err != nil:
				_ = r.Error("500", err.Error(), nil)
			default:
				_ = r.Respond(m.Data)
			}
		}},
		{"render", "callcast.render", func(r micro.Request) {
			_ = r.Respond([]byte(name))
			renders <- name
			frame := &nats.Msg{Subject: "callcast.stream." + string(r.Data()) + ".out", Header: nats.Header{}, Data: []byte("media")}
			frame.Header.Set("Callcast-Playback", name)
			_ = nc.PublishMsg(frame)
		}},
	}
	for _, e := range endpoints {
		if err := svc.AddEndpoint(e.name, e.handler, micro.WithEndpointSubject(e.subject)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
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

// checkLibrary runs, on nc, every operation of the audio library that the
// workers and `worker library` use: binding the buckets with their bounds
// (an update of existing ones), put, list, stat, get, playing from the
// shared cache (which records the use), eviction past CACHE_MAX_BYTES,
// the buckets' sizes, and remove. Every one must be allowed.
func checkLibrary(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Room for two 1 s entries in the cache: the third evicts.
	lib, err := library.New(ctx, library.Options{JS: js, MemoryBytes: -1, CacheMaxBytes: 16<<10 + 20000, TouchInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	if err := lib.Bind(ctx); err != nil {
		t.Fatalf("bind: %v (last error %v)", err, nc.LastError())
	}
	for i, hz := range []float64{440, 550, 660} {
		name := fmt.Sprintf("auth/tone-%d.wav", i)
		if _, err := lib.Put(ctx, name, bytes.NewReader(calltest.SineWAV(time.Second, hz))); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	if lib.Stats().SharedEvictionsOld+lib.Stats().SharedEvictionsLRU == 0 {
		t.Error("nothing evicted past the cache's bound")
	}
	if list, err := lib.List(ctx); err != nil || len(list) < 3 {
		t.Fatalf("list: %d objects, %v", len(list), err)
	}
	if _, err := lib.Stat(ctx, "auth/tone-2.wav"); err != nil {
		t.Fatalf("stat: %v", err)
	}
	if _, err := lib.Get(ctx, "auth/tone-2.wav", io.Discard); err != nil {
		t.Fatalf("get: %v", err)
	}
	s, err := lib.Open(ctx, "auth/tone-2.wav")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	_, err = io.Copy(io.Discard, s)
	s.Close()
	if err != nil {
		t.Fatalf("play: %v", err)
	}
	if _, err := lib.Buckets(ctx); err != nil {
		t.Fatalf("bucket sizes: %v", err)
	}
	for i := range 3 {
		if _, err := lib.Remove(ctx, fmt.Sprintf("auth/tone-%d.wav", i)); err != nil {
			t.Fatalf("remove: %v", err)
		}
	}
	lib.Close() // waits for the background writes (the recorded use)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := nc.LastError(); err != nil {
		t.Errorf("last error: %v", err)
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
