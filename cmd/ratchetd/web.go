package main

import (
	"fmt"
	"net"
	"net/http"

	"github.com/ratchet-cni/ratchet/internal/web"
)

// checkWebAddr refuses a --web-addr that others than the node's own
// users may reach, unless remote: the page has no authentication. Only a
// loopback address or "localhost" counts as local; an empty host (every
// interface) or another name does not.
func checkWebAddr(addr string, remote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--web-addr %q: %w", addr, err)
	}
	if remote || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--web-addr %q: not a loopback address; the page has no authentication: add --web-remote to serve it there", addr)
}

// loopbackHosts answers 421 to a request whose Host is not a loopback
// address or localhost: a page served on the loopback is then out of
// reach of another site that rebinds its own name to 127.0.0.1 (DNS
// rebinding), whose requests would carry that name.
func loopbackHosts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if hh, _, err := net.SplitHostPort(r.Host); err == nil {
			host = hh
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "this page answers only to a loopback address or localhost", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// mountWeb serves the topology page h at "/" on addr (--web-addr); local:
// only to requests addressed to the loopback (loopbackHosts). Its event
// streams end when ratchetd stops.
func mountWeb(e *httpEndpoints, addr string, local bool, h *web.Handler) {
	var handler http.Handler = h
	if local {
		handler = loopbackHosts(h)
	}
	e.mount("--web-addr", addr, "/", handler)
	e.onStop = append(e.onStop, h.Close)
}
