// Package web serves ratchetd's live topology page: one page drawing the
// pods and pod links a node knows as a graph, their states by colour and
// each link's counters and run-time settings in a side panel, kept
// current by server-sent events.
//
// The data comes through a Source, so the handler can be tested against
// any lab and ratchetd wires the node's store (StoreSource). The handler
// reads the source only while at least one page is connected: with no
// viewer it does nothing at all.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ratchet-cni/ratchet/internal/labop"
)

//go:embed static
var staticFiles embed.FS

// Snapshot is what the page shows: the document of `ratchetctl links
// --stats -o json` (labop.Document), and the node's name.
type Snapshot struct {
	Node string `json:"node,omitempty"`
	labop.Document
	// Control says that the page may pull and plug cables (Options.Control).
	Control bool `json:"control,omitempty"`
}

// Pod, Link and End are the document's.
type (
	Pod  = labop.DocPod
	Link = labop.DocLink
	End  = labop.DocEnd
)

// Source takes snapshots of the node's pods and links.
type Source interface {
	Snapshot(ctx context.Context) (*Snapshot, error)
}

// Controller pulls a link's cable (pull) or plugs it back. end names one
// of the link's ends as NAMESPACE/POD:IFNAME, as `ratchetctl link down`
// takes it; an error that is the caller's (a bad or unknown end) wraps
// ErrBadRequest.
type Controller interface {
	Cable(ctx context.Context, end string, pull bool) error
}

// ErrBadRequest marks a Controller's error that names a bad argument: the
// page is answered 400 rather than 500.
var ErrBadRequest = errors.New("bad request")

// Options tune a Handler.
type Options struct {
	// Interval is how often the source is read while a page is
	// connected (default 500 ms).
	Interval time.Duration
	// Control, when not nil, lets the page pull and plug cables through
	// it; nil: the page is read-only.
	Control Controller
	// Log gets the source's and the control's failures (default: none).
	Log *slog.Logger
}

// Handler serves the page (/), its files (/static/), one snapshot as JSON
// (/api/snapshot), the snapshots as server-sent events (/api/events) and,
// with Options.Control, POST /api/cable.
type Handler struct {
	mux  *http.ServeMux
	src  Source
	opts Options

	mu      sync.Mutex
	viewers int
	stop    context.CancelFunc // the poller's, while viewers > 0
	stopped chan struct{}      // closed when that poller has ended
	gen     uint64             // the running poller's generation (see publish)
	last    []byte             // the last snapshot sent, as JSON
	version uint64             // counts the changes of last
	changed chan struct{}      // closed and replaced at each change

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: the streams end
}

// New returns the handler serving src.
func New(src Source, opts Options) *Handler {
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{mux: http.NewServeMux(), src: src, opts: opts, changed: make(chan struct{}), closed: make(chan struct{})}
	sub, _ := fs.Sub(staticFiles, "static") // the directory is embedded: Sub cannot fail
	files := http.FileServerFS(sub)
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	h.mux.Handle("GET /{$}", files) // index.html
	h.mux.HandleFunc("GET /api/snapshot", h.serveSnapshot)
	h.mux.HandleFunc("GET /api/events", h.serveEvents)
	if opts.Control != nil {
		h.mux.HandleFunc("POST /api/cable", h.serveCable)
	}
	return h
}

// ServeHTTP serves the page; every answer forbids framing and foreign
// scripts (the names shown come from pod annotations).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// take reads the source once and marshals the snapshot.
func (h *Handler) take(ctx context.Context) ([]byte, error) {
	s, err := h.src.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	s.Control = h.opts.Control != nil
	return json.Marshal(s)
}

func (h *Handler) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	data, err := h.take(r.Context())
	if err != nil {
		h.opts.Log.Error("topology page: snapshot", "error", err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// serveEvents sends the current snapshot, then each new one, as SSE
// "snapshot" events, until the page goes or the server's context ends.
func (h *Handler) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	h.join()
	defer h.leave()
	var sent uint64
	for {
		h.mu.Lock()
		data, version, changed := h.last, h.version, h.changed
		h.mu.Unlock()
		if version != sent && data != nil {
			if err := writeEvent(w, "snapshot", data); err != nil {
				return
			}
			flusher.Flush()
			sent = version
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-h.closed:
			return
		}
	}
}

// Close ends every event stream, so that the server serving the handler
// can shut down (an open stream is a request that never ends otherwise).
// Pages connecting later get no events.
func (h *Handler) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
}

// writeEvent writes one SSE event. JSON has no raw newline, so data is
// one line.
func writeEvent(w io.Writer, event string, data []byte) error {
	_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	return err
}

// join counts a viewer and starts the poller for the first; the poller
// reads the source at once, so a new page gets a fresh snapshot.
func (h *Handler) join() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.viewers++
	if h.viewers > 1 {
		// A later viewer gets the last snapshot at once; the poller
		// goes on.
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop, h.stopped = cancel, make(chan struct{})
	go h.poll(ctx, h.gen, h.stopped)
}

// leave uncounts a viewer and stops the poller with the last. Its last
// snapshot is forgotten, and its generation ends: a read of that poller
// that finishes after this (it may have been under way) is dropped by
// publish, so the next viewer is never shown a stale snapshot.
func (h *Handler) leave() {
	h.mu.Lock()
	h.viewers--
	if h.viewers > 0 {
		h.mu.Unlock()
		return
	}
	stop, stopped := h.stop, h.stopped
	h.stop, h.stopped = nil, nil
	h.last = nil
	h.gen++
	h.mu.Unlock()
	stop()
	<-stopped
}

// Viewers is how many pages are connected (the poller runs while it is
// above zero).
func (h *Handler) Viewers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.viewers
}

// readShare is the most of a core the poller spends reading the source
// while pages are connected, as long as reads are quick enough for
// maxWait: it waits nine times as long as a read took.
const readShare = 10

// maxWait bounds the wait between reads, so that a change shows on the
// page within 2 s however slow reads get (a busy node, a thousand links):
// past that, the page's promise wins over its share of a core.
const maxWait = time.Second

// NextWait is how long the poller waits after a read that took took:
// the interval, or longer when reads are slow, so that reading stays under
// a tenth of a core, but never longer than maxWait (or the interval, if
// that is longer).
func NextWait(interval, took time.Duration) time.Duration {
	return min(max(interval, (readShare-1)*took), max(interval, maxWait))
}

// poll reads the source, then again after each NextWait, until ctx ends,
// and publishes each snapshot of generation gen (see publish).
func (h *Handler) poll(ctx context.Context, gen uint64, done chan<- struct{}) {
	defer close(done)
	failing := false
	for {
		start := time.Now()
		data, err := h.take(ctx)
		wait := NextWait(h.opts.Interval, time.Since(start))
		switch {
		case err == nil:
			failing = false
			// Checking ctx here would not do: the last viewer can leave
			// between the check and publish. publish checks the
			// generation under the lock leave ends it with.
			h.publish(gen, data)
		case ctx.Err() != nil:
			return // a read cut short by the leave: no failure to tell
		default:
			// Logged once per failing spell, not at every tick.
			if !failing {
				h.opts.Log.Error("topology page: snapshot", "error", err)
			}
			failing = true
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// publish makes data, read by the poller of generation gen, the last
// snapshot and wakes the viewers when it changed. Data of an ended
// generation (its viewers all left while it was read) is dropped.
func (h *Handler) publish(gen uint64, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen || bytes.Equal(h.last, data) {
		return
	}
	h.last = data
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
}

// cableRequest is POST /api/cable's body.
type cableRequest struct {
	// End is one end of the link, NAMESPACE/POD:IFNAME.
	End string `json:"end"`
	// Pull: pull the cable (true) or plug it back (false).
	Pull bool `json:"pull"`
}

// serveCable pulls or plugs a cable. It takes only a JSON body, which a
// page of another origin cannot send without a CORS preflight this
// server never grants.
func (h *Handler) serveCable(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "want Content-Type: application/json", http.StatusUnsupportedMediaType)
		return
	}
	var req cableRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := h.opts.Control.Cable(r.Context(), req.End, req.Pull); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrBadRequest) {
			code = http.StatusBadRequest
		} else {
			h.opts.Log.Error("topology page: cable", "end", req.End, "pull", req.Pull, "error", err)
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
