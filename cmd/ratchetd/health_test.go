package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
)

// /readyz and /healthz answer with the status a probe reads and, in the
// body, the reason a user reads in kubectl describe.
func TestHealthEndpoints(t *testing.T) {
	h := agentapi.Health{Ready: true, Live: true, Checks: []agentapi.Check{{Name: "etcd", OK: true}, {Name: "parking", OK: true}}}
	srv := httptest.NewServer(healthHandler(func() agentapi.Health { return h }))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/readyz", "/healthz"} {
		if code, body := get(path); code != http.StatusOK || !strings.Contains(body, "parking: ok") {
			t.Errorf("%s when healthy: %d %q", path, code, body)
		}
	}

	h.Ready = false
	h.Checks[1] = agentapi.Check{Name: "parking", Reason: "cannot open the parking netns", Since: time.Unix(0, 0)}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: parking: cannot open the parking netns") ||
		!strings.Contains(body, "etcd: ok") {
		t.Errorf("/readyz when not ready: %d %q", code, body)
	}
	// Not ready is no reason to restart the agent.
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz when not ready but live: %d %q", code, body)
	}
	h.Live = false
	if code, body := get("/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stuck") {
		t.Errorf("/healthz when stuck: %d %q", code, body)
	}
	if code, _ := get("/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d", code)
	}
}

// An address ratchetd cannot listen on fails the start, before the agent
// runs, rather than leaving the probes to fail with no word why.
func TestBadHealthAddrFailsTheStart(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"--etcd-endpoints", "http://192.0.2.1:2379", "--etcd-insecure", "--node", "n1", "--store-dir", t.TempDir(),
		"--socket", t.TempDir() + "/s.sock", "--health-addr", "192.0.2.1:1"}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--health-addr") {
		t.Fatalf("exit %d, stderr %q; want 1 naming --health-addr", code, stderr.String())
	}
}
