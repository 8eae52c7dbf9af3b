package main

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/ratchet-cni/ratchet/internal/agent"
	"github.com/ratchet-cni/ratchet/internal/metrics"
)

// metricsHandler serves the node's links, the agent's health and the Go
// runtime's and process's own series, all read when scraped. Its own
// registry, not the global one: only what is registered here is served.
func metricsHandler(node, storeDir string, withRegistry bool, stats func() agent.Stats, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(metrics.Agent(node, withRegistry, stats)...)
	links := &metrics.Links{Node: node, StoreDir: storeDir, Log: log}
	// The links' families are built apart (metrics.Links says why), and
	// their names are not the registry's: served one after the other.
	all := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		fams, err := reg.Gather()
		more, lerr := links.Gather()
		return append(fams, more...), errors.Join(err, lerr)
	})
	// A series that fails is logged and left out; the rest still serve.
	return promhttp.HandlerFor(all, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: slogPrinter{log}})
}

// slogPrinter hands promhttp's errors to the agent's log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics", "error", v) }
