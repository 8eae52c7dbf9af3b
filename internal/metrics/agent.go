package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratchet-cni/ratchet/internal/agent"
)

// Agent returns the agent's own series, each read from stats at scrape
// time: whether it is ready and live, each of its health checks, and its
// reconcile passes. Without a registry (local, single-node mode) the
// agent neither checks etcd nor reconciles: those series are left out
// rather than claim anything.
func Agent(node string, withRegistry bool, stats func() agent.Stats) []prometheus.Collector {
	constLabels := prometheus.Labels{"node": node}
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	check := func(name string) func() float64 {
		return func() float64 {
			for _, c := range stats().Checks {
				if c.Name == name {
					return bit(c.OK)
				}
			}
			return 0 // not started yet: nothing is known to pass
		}
	}
	mode := "local"
	if withRegistry {
		mode = "etcd"
	}
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ratchet_agent_info", ConstLabels: prometheus.Labels{"node": node, "store": mode},
			Help: "Always 1; the store label says whether ratchetd runs with etcd or on the local store only."},
			func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ratchet_agent_ready", ConstLabels: constLabels,
			Help: "1 when every health check passes (what /readyz answers with 200)."},
			func() float64 { return bit(stats().Ready) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ratchet_agent_live", ConstLabels: constLabels,
			Help: "1 when the agent's loop is not stuck (what /healthz answers with 200)."},
			func() float64 { return bit(stats().Live) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ratchet_agent_parking_ok", ConstLabels: constLabels,
			Help: "1 when ratchetd sees the parking namespace the plugin made (or there is none yet)."},
			check(agent.CheckParking)),
	}
	if withRegistry {
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ratchet_agent_etcd_reachable", ConstLabels: constLabels,
				Help: "1 when etcd answered the last health check within the call timeout."},
				check(agent.CheckEtcd)),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ratchet_agent_reconcile_passes_total", ConstLabels: constLabels,
				Help: "Reconcile passes (tunnels and added links checked against the registry) since ratchetd started."},
				func() float64 { return float64(stats().Passes) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ratchet_agent_reconcile_errors_total", ConstLabels: constLabels,
				Help: "Reconcile passes that failed since ratchetd started."},
				func() float64 { return float64(stats().Failures) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ratchet_agent_last_reconcile_timestamp_seconds", ConstLabels: constLabels,
				Help: "When the last reconcile pass ended, in seconds since the epoch (0: none yet)."},
				func() float64 {
					if t := stats().LastPass; !t.IsZero() {
						return float64(t.UnixNano()) / 1e9
					}
					return 0
				}),
		)
	}
	return cs
}
