package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/web"
)

// memSource is a Source holding a snapshot in memory, counting its reads.
type memSource struct {
	mu    sync.Mutex
	snap  web.Snapshot
	reads atomic.Int64
}

func (m *memSource) Snapshot(context.Context) (*web.Snapshot, error) {
	m.reads.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snap
	s.Links = append([]web.Link(nil), m.snap.Links...)
	return &s, nil
}

func (m *memSource) setState(st podlink.State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap.Links[0].State = st
}

func newMem() *memSource {
	return &memSource{snap: web.Snapshot{Document: labop.Document{
		Pods: []web.Pod{{Pod: "lab/r1"}, {Pod: "lab/r2"}},
		Links: []web.Link{{ID: "l1", State: podlink.StateUp,
			Ends: [2]web.End{{Pod: "lab/r1", IfName: "e1"}, {Pod: "lab/r2", IfName: "w1"}}}},
	}}}
}

// events reads SSE "snapshot" events from the stream into a channel.
func events(t *testing.T, ctx context.Context, url string) <-chan web.Snapshot {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	ch := make(chan web.Snapshot, 16)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "snapshot":
				var s web.Snapshot
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
					t.Errorf("event data: %v", err)
					return
				}
				ch <- s
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan web.Snapshot) web.Snapshot {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("event stream ended")
		}
		return s
	case <-time.After(2 * time.Second):
		t.Fatal("no event in 2 s")
	}
	panic("unreachable")
}

// TestEventsOnlyWhileViewed: with no page connected the source is never
// read; a page gets the snapshot at once, then one event per change and
// none while nothing changes; when it goes, the reading stops.
func TestEventsOnlyWhileViewed(t *testing.T) {
	src := newMem()
	h := web.New(src, web.Options{Interval: 10 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()

	time.Sleep(100 * time.Millisecond)
	if n := src.reads.Load(); n != 0 {
		t.Fatalf("source read %d times with no viewer", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := events(t, ctx, srv.URL)
	s := next(t, ch)
	if len(s.Pods) != 2 || len(s.Links) != 1 || s.Links[0].State != podlink.StateUp || s.Control {
		t.Fatalf("first snapshot: %+v", s)
	}
	// A second page gets the current snapshot too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	if s := next(t, events(t, ctx2, srv.URL)); len(s.Links) != 1 {
		t.Fatalf("second page's snapshot: %+v", s)
	}
	cancel2()

	// Unchanged: no event, though the source is read.
	before := src.reads.Load()
	select {
	case s := <-ch:
		t.Fatalf("event without a change: %+v", s)
	case <-time.After(100 * time.Millisecond):
	}
	if src.reads.Load() <= before {
		t.Fatal("the source is not polled while a page is connected")
	}
	src.setState(podlink.StatePulled)
	if s := next(t, ch); s.Links[0].State != podlink.StatePulled {
		t.Fatalf("after the change: %+v", s)
	}

	cancel()
	for deadline := time.Now().Add(2 * time.Second); h.Viewers() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d viewers after the pages left", h.Viewers())
		}
	}
	n := src.reads.Load()
	time.Sleep(100 * time.Millisecond)
	if m := src.reads.Load(); m != n {
		t.Fatalf("source read %d times after the last page left", m-n)
	}
}

// TestReadOnlyByDefault: without Options.Control there is no way to
// change anything; the page and its files are served with a CSP.
func TestReadOnlyByDefault(t *testing.T) {
	srv := httptest.NewServer(web.New(newMem(), web.Options{}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/api/cable", "application/json", strings.NewReader(`{"end":"lab/r1:e1","pull":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /api/cable on a read-only page: %s", resp.Status)
	}
	for _, path := range []string{"/", "/static/app.js", "/static/app.css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Fatalf("GET %s: %s, CSP %q", path, resp.Status, resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// TestNextWait: fast reads wait the interval; slow ones nine times their
// length, so that reading takes at most a tenth of a core; very slow ones
// (a loaded node) at most a second, so that a change shows within 2 s.
func TestNextWait(t *testing.T) {
	for _, c := range []struct{ interval, took, want time.Duration }{
		{500 * time.Millisecond, 5 * time.Millisecond, 500 * time.Millisecond},
		{500 * time.Millisecond, 55 * time.Millisecond, 500 * time.Millisecond},
		{500 * time.Millisecond, 100 * time.Millisecond, 900 * time.Millisecond},
		{500 * time.Millisecond, 140 * time.Millisecond, time.Second},
		{500 * time.Millisecond, 3 * time.Second, time.Second},
		{2 * time.Second, 3 * time.Second, 2 * time.Second},
	} {
		got := web.NextWait(c.interval, c.took)
		if got != c.want {
			t.Errorf("NextWait(%v, %v) = %v, want %v", c.interval, c.took, got, c.want)
		}
		if share := float64(c.took) / float64(c.took+got); 9*c.took <= time.Second && share > 0.1 {
			t.Errorf("a read of %v every %v: %.0f%% of the time", c.took, c.interval, 100*share)
		}
	}
}

// funcSource is a Source that is a function.
type funcSource func(context.Context) (*web.Snapshot, error)

func (f funcSource) Snapshot(ctx context.Context) (*web.Snapshot, error) { return f(ctx) }

// TestNoStaleSnapshotForTheNextViewer: a read of the poller that is
// under way when the last page leaves, and finishes only after the next
// page came, is never shown to that page: it gets what its own poller
// read. The source forces the interleaving: the first poller's second
// read blocks (ignoring its context, as a slow kernel read may) until the
// next page is connected.
func TestNoStaleSnapshotForTheNextViewer(t *testing.T) {
	snapOf := func(st podlink.State) *web.Snapshot {
		s := newMem().snap
		s.Links = append([]web.Link(nil), s.Links...)
		s.Links[0].State = st
		return &s
	}
	var calls atomic.Int64
	secondIn, release, third := make(chan struct{}), make(chan struct{}), make(chan struct{})
	src := funcSource(func(context.Context) (*web.Snapshot, error) {
		switch calls.Add(1) {
		case 1:
			return snapOf(podlink.StateUp), nil
		case 2: // the first poller's read, finishing after its page left
			close(secondIn)
			<-release
			return snapOf(podlink.StatePulled), nil
		default: // the second poller's
			<-third
			return snapOf(podlink.StateImpaired), nil
		}
	})
	h := web.New(src, web.Options{Interval: 10 * time.Millisecond})
	left := make(chan struct{}, 2) // an event stream's handler returned
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/api/events" {
			left <- struct{}{}
		}
	}))
	defer srv.Close()
	defer h.Close()
	var onceRelease, onceThird sync.Once
	openRelease := func() { onceRelease.Do(func() { close(release) }) }
	openThird := func() { onceThird.Do(func() { close(third) }) }
	// A failure must not leave the source's reads blocked.
	defer openThird()
	defer openRelease()

	viewers := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); h.Viewers() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d viewers, want %d", h.Viewers(), n)
			}
		}
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	if s := next(t, events(t, ctx1, srv.URL)); s.Links[0].State != podlink.StateUp {
		t.Fatalf("first page's snapshot: %+v", s)
	}
	<-secondIn
	cancel1()
	viewers(0)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	ch2 := events(t, ctx2, srv.URL)
	viewers(1)
	openRelease() // the first poller's read ends now, its page long gone
	select {
	case <-left: // the first page's handler, and so its poller, ended
	case <-time.After(2 * time.Second):
		t.Fatal("the first page's stream did not end")
	}
	select {
	case s := <-ch2:
		t.Fatalf("the next page was shown the old poller's snapshot: %+v", s)
	case <-time.After(50 * time.Millisecond):
	}
	openThird()
	if s := next(t, ch2); s.Links[0].State != podlink.StateImpaired {
		t.Fatalf("the next page's first snapshot: %+v, want its own poller's (impaired)", s)
	}
}

// TestStoreSourceGivesUpOnABusyLock: with the node lock held (an ADD),
// a snapshot of the page fails after its LockWait instead of queueing
// behind the ADD, and so never holds the ADD's followers up either.
func TestStoreSourceGivesUpOnABusyLock(t *testing.T) {
	dir := t.TempDir()
	lock, err := store.LockNode(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	start := time.Now()
	snap, err := web.StoreSource{Dir: dir, Node: "n1", LockWait: 100 * time.Millisecond}.Snapshot(context.Background())
	if took := time.Since(start); err == nil || snap != nil || took > 2*time.Second {
		t.Fatalf("Snapshot with the lock held = %+v, %v after %v, want an error after about 100 ms", snap, err, took)
	}
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	if snap, err := (web.StoreSource{Dir: dir, Node: "n1"}).Snapshot(context.Background()); err != nil || snap.Node != "n1" || len(snap.Links) != 0 {
		t.Fatalf("Snapshot with the lock free = %+v, %v, want an empty lab", snap, err)
	}
}
