package main

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/web"
)

// TestServeWebEndsWithOpenPages: a page's event stream never ends by
// itself; ratchetd's stop must end it, or the shutdown would wait.
func TestServeWebEndsWithOpenPages(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	h := web.New(web.StoreSource{Dir: t.TempDir(), Node: "n1"}, web.Options{})
	var e httpEndpoints
	mountWeb(&e, "127.0.0.1:0", true, h)
	lns, err := e.listen()
	if err != nil {
		t.Fatal(err)
	}
	done := e.serve(ctx, lns, slog.New(slog.DiscardHandler))
	addr := lns["127.0.0.1:0"].Addr().String()
	resp, err := http.Get("http://" + addr + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The first event: the empty store's snapshot.
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data: ") {
	}
	if !strings.Contains(sc.Text(), `"node":"n1"`) || !strings.Contains(sc.Text(), `"pods":[]`) {
		t.Fatalf("first event: %q", sc.Text())
	}
	stop()
	// The stream ends: http.Server's Shutdown leaves an active
	// connection alone, so only the handler's Close can end it.
	ended := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(3 * time.Second):
		t.Fatal("the page's event stream did not end with ratchetd")
	}
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("the server did not stop")
	}
}

// TestLoopbackHosts: on the loopback, a request that names another host
// (a rebound DNS name) is refused; loopback names pass.
func TestLoopbackHosts(t *testing.T) {
	h := loopbackHosts(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for host, want := range map[string]int{
		"127.0.0.1:9098":        200,
		"[::1]:9098":            200,
		"localhost:9098":        200,
		"localhost":             200,
		"attacker.example:9098": http.StatusMisdirectedRequest,
		"192.0.2.1:9098":        http.StatusMisdirectedRequest,
		"":                      http.StatusMisdirectedRequest,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
}
