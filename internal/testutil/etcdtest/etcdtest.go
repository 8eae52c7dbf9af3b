// Package etcdtest starts etcd for tests: embedded (go.etcd.io/etcd/server
// /v3/embed, in the test process) or Debian's /usr/bin/etcd as child
// processes, one member or a cluster, plain or with TLS. It is apart from
// internal/testutil so that only the tests that use etcd link its server.
//
// The servers listen on 127.0.0.1: run the tests in a network namespace of
// their own (testutil.RunInOwnNetns in TestMain) so that it is theirs.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// Binary is Debian's etcd server (package etcd-server, which make check
// installs).
const Binary = "/usr/bin/etcd"

// requireOwnNetns fails a test that would listen on the host's loopback.
func requireOwnNetns(t testing.TB) {
	t.Helper()
	if os.Getenv(testutil.OwnNetnsEnv) == "" {
		t.Fatal("etcd tests must run in their own netns: call testutil.RunInOwnNetns from TestMain")
	}
}

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on and
// that no other caller got.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[port] {
			given[port] = true
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// TLSFiles are PEM files for a server that requires client certificates.
type TLSFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
	// CAKey signs more client certificates (ClientCertFor).
	CAKey string
}

// StartEmbeddedEtcd starts a one-member etcd in the test process (fast
// ticks, data in t.TempDir, no fsync), stopped when the test ends, and
// returns its client endpoints.
func StartEmbeddedEtcd(t testing.TB) []string {
	return startEmbedded(t, nil)
}

// StartEmbeddedEtcdTLS is StartEmbeddedEtcd serving clients over TLS with
// f's server certificate, requiring client certificates signed by f.CA.
// The endpoints are https:// URLs.
func StartEmbeddedEtcdTLS(t testing.TB, f TLSFiles) []string {
	return startEmbedded(t, &f)
}

func startEmbedded(t testing.TB, tf *TLSFiles) []string {
	t.Helper()
	requireOwnNetns(t)
	cfg := embed.NewConfig()
	cfg.Name = "embedded"
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	scheme := "http"
	if tf != nil {
		scheme = "https"
		cfg.ClientTLSInfo.CertFile = tf.ServerCert
		cfg.ClientTLSInfo.KeyFile = tf.ServerKey
		cfg.ClientTLSInfo.TrustedCAFile = tf.CA
		cfg.ClientTLSInfo.ClientCertAuth = true
	}
	client := mustURL(fmt.Sprintf("%s://127.0.0.1:%d", scheme, FreePort(t)))
	peer := mustURL(fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = true
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("embedded etcd: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("embedded etcd not ready after 20s")
	}
	return []string{client.String()}
}

// Member is an etcd server run from Binary as a child process of the test.
type Member struct {
	Name    string
	DataDir string
	// ClientURL is the member's client endpoint, PeerURL its peer URL.
	ClientURL, PeerURL string
	args               []string
	log                string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
}

// PID is the member's process id, 0 while it is stopped.
func (m *Member) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Kill stops the member at once (SIGKILL to its own PID) and reaps it; a
// stopped member is left alone.
func (m *Member) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
	m.cmd = nil
}

// Restart starts a killed member again on its data dir and ports, and
// waits until it serves requests when wait says so (a lone member of a
// cluster that lost quorum cannot serve before the others return).
func (m *Member) Restart(t testing.TB, wait bool) {
	t.Helper()
	m.start(t)
	if wait {
		WaitReady(t, []string{m.ClientURL})
	}
}

func (m *Member) start(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		t.Fatalf("etcd member %s already runs", m.Name)
	}
	logf, err := os.OpenFile(m.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(Binary, m.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Do not outlive the test binary, whatever ends it. Pdeathsig fires
	// when the thread that started the child exits, so a goroutine holds
	// that thread until the child is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started, done := make(chan error), make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		err := cmd.Start()
		started <- err
		if err == nil {
			_ = cmd.Wait()
			close(done)
		}
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", Binary, err)
	}
	m.cmd, m.done = cmd, done
}

// Cluster is a cluster of Members.
type Cluster struct {
	Members []*Member
}

// Endpoints are every member's client endpoint.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// StartEtcdCluster starts n members of one cluster from Binary (fast
// ticks, data in t.TempDir), killed when the test ends, and waits until
// each serves requests. It fails the test if Binary is missing.
func StartEtcdCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return startCluster(t, n, "")
}

func startCluster(t testing.TB, n int, dataDir string) *Cluster {
	t.Helper()
	requireOwnNetns(t)
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("%s is missing (Debian package etcd-server; make check installs it): %v", Binary, err)
	}
	token := fmt.Sprintf("ratchet-test-%d", time.Now().UnixNano())
	c := &Cluster{}
	var initial []string
	dir := t.TempDir()
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		}
		m.DataDir = filepath.Join(dir, m.Name)
		if dataDir != "" {
			m.DataDir = dataDir
		}
		m.log = filepath.Join(dir, m.Name+".log")
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		m.args = []string{
			"--name", m.Name, "--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--heartbeat-interval", "10", "--election-timeout", "100",
			"--logger", "zap", "--log-level", "warn",
		}
		m.start(t)
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
			if t.Failed() {
				if out, err := os.ReadFile(m.log); err == nil && len(out) > 0 {
					t.Logf("etcd member %s log (tail):\n%s", m.Name, tail(string(out), 3000))
				}
			}
		}
	})
	for _, m := range c.Members {
		WaitReady(t, []string{m.ClientURL})
	}
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// StartEtcdBinary starts a one-member etcd from Binary (on dataDir[0] if
// given, else in t.TempDir), killed when the test ends. stop kills it by
// its PID (pid); it is safe to call twice.
func StartEtcdBinary(t testing.TB, dataDir ...string) (endpoints []string, stop func(), pid int) {
	t.Helper()
	m := StartEtcdMember(t, dataDir...)
	return []string{m.ClientURL}, m.Kill, m.PID()
}

// StartEtcdMember is StartEtcdBinary returning the Member, which can be
// killed and restarted on the same data dir and ports.
func StartEtcdMember(t testing.TB, dataDir ...string) *Member {
	t.Helper()
	dir := ""
	if len(dataDir) > 0 {
		dir = dataDir[0]
	}
	return startCluster(t, 1, dir).Members[0]
}

// WaitReady waits up to 20s until one of endpoints serves a linearizable
// read.
func WaitReady(t testing.TB, endpoints []string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := cli.Get(ctx, "ready-probe")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd at %v not ready after 20s: %v", endpoints, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
