package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// httpEndpoints is ratchetd's HTTP side: each flag that serves something
// (--health-addr, --metrics-addr, ...) mounts its handlers at its address
// here, and each address gets one listener and one server, whichever
// flags name it. A new endpoint is one more mount call in run.
type httpEndpoints struct {
	muxes map[string]*mount
	order []string
	// onStop runs when the servers are told to stop, before they shut
	// down: a handler whose responses never end by themselves (the
	// topology page's event streams) ends them there, since Shutdown
	// waits for active connections.
	onStop []func()
}

type mount struct {
	flag string // the first flag that named the address, for errors
	mux  *http.ServeMux
	what []string
}

// mount serves h at pattern (http.ServeMux's) on addr, which flag named.
// An empty addr is off.
func (e *httpEndpoints) mount(flag, addr, pattern string, h http.Handler) {
	if addr == "" {
		return
	}
	if e.muxes == nil {
		e.muxes = map[string]*mount{}
	}
	m := e.muxes[addr]
	if m == nil {
		m = &mount{flag: flag, mux: http.NewServeMux()}
		e.muxes[addr] = m
		e.order = append(e.order, addr)
	}
	m.mux.Handle(pattern, h)
	m.what = append(m.what, pattern)
}

// listen listens on every address at once, so that a bad one fails the
// start before anything runs; on an error it holds nothing.
func (e *httpEndpoints) listen() (map[string]net.Listener, error) {
	lns := map[string]net.Listener{}
	for _, addr := range e.order {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("%s: %w", e.muxes[addr].flag, err)
		}
		lns[addr] = ln
	}
	return lns, nil
}

// serve serves each listener until ctx ends; done is closed when every
// server has stopped.
func (e *httpEndpoints) serve(ctx context.Context, lns map[string]net.Listener, log *slog.Logger) (done <-chan struct{}) {
	ch := make(chan struct{})
	stopped := make(chan struct{}, len(lns))
	var stopOnce sync.Once
	for addr, ln := range lns {
		m := e.muxes[addr]
		srv := &http.Server{Handler: m.mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			defer func() { stopped <- struct{}{} }()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server", "addr", addr, "error", err)
			}
		}()
		go func() {
			<-ctx.Done()
			stopOnce.Do(func() {
				for _, f := range e.onStop {
					f()
				}
			})
			shut, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.Shutdown(shut)
		}()
		log.Info("serving", "addr", ln.Addr().String(), "paths", m.what)
	}
	go func() {
		defer close(ch)
		for range lns {
			<-stopped
		}
	}()
	return ch
}
