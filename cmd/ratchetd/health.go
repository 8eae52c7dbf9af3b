package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
)

// DefaultHealthAddr is where ratchetd serves /healthz and /readyz: the
// node's loopback, as the DaemonSet runs on the node's network and the
// kubelet probes from there.
const DefaultHealthAddr = "127.0.0.1:9099"

// healthHandler answers /healthz (the agent is live: its loop is not
// stuck, a restart would not help otherwise) and /readyz (every check
// passes) from what the agent knows, with 200 or 503 and, in the body,
// each check and the reason of each that fails. (The kubelet reports only
// the status code of a failed HTTP probe; the manifests' readiness probe
// is `ratchetctl health`, whose output kubectl describe shows.)
func healthHandler(health func() agentapi.Health) http.Handler {
	mux := http.NewServeMux()
	answer := func(w http.ResponseWriter, ok bool, h agentapi.Health, what string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ok {
			w.WriteHeader(http.StatusOK)
			fmt.Fprintln(w, what)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not %s: %s\n", what, h.Reason())
		}
		for _, c := range h.Checks {
			if c.OK {
				fmt.Fprintf(w, "%s: ok\n", c.Name)
			} else {
				fmt.Fprintf(w, "%s: failing since %s: %s\n", c.Name, c.Since.UTC().Format(time.RFC3339), c.Reason)
			}
		}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := health()
		if !h.Live {
			// Reason names the checks; liveness has its own.
			h.Checks = append(h.Checks, agentapi.Check{Name: "loop", Reason: "no reconcile pass has ended for too long: the agent is stuck"})
		}
		answer(w, h.Live, h, "live")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		h := health()
		answer(w, h.Ready, h, "ready")
	})
	return mux
}
