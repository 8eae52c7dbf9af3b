package main

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ratchet-cni/ratchet/internal/agent"
	"github.com/ratchet-cni/ratchet/internal/metrics"
)

// metricsHandler serves the node's links, the agent's health and the Go
// runtime's and process's own series, all read when scraped. Its own
// registry, not the global one: only what is registered here is served.
func metricsHandler(node, storeDir string, withRegistry bool, stats func() agent.Stats, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&metrics.Links{Node: node, StoreDir: storeDir, Log: log})
	reg.MustRegister(metrics.Agent(node, withRegistry, stats)...)
	// A series that fails is logged and left out; the rest still serve.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: slogPrinter{log}})
}

// slogPrinter hands promhttp's errors to the agent's log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics", "error", v) }
