package agent_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ratchet-cni/ratchet/internal/metrics"
	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// labelsOf returns a series' labels as a map.
func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// TestCrossNodeLinkMetrics: node 1's metrics of a link to a pod on node 2
// name it a vxlan link in state remote, count both directions on node 1's
// end (toward b: what enters the tunnel), and tell nothing of b's state,
// which is node 2's; the agent's series say etcd answers.
func TestCrossNodeLinkMetrics(t *testing.T) {
	c := newCluster(t, 2, startEtcd(t))
	n1, n2 := c.nodes[0], c.nodes[1]
	a, _ := c.linkedPair(n1, n2)
	const count = 20
	if got, _, err := testutil.Burst(a.ns, "198.51.100.2", count, 100); err != nil || got != count {
		t.Fatalf("pings answered: %d of %d (%v)", got, count, err)
	}
	fams, err := (prometheus.Gatherers{&metrics.Links{Node: n1.name, StoreDir: n1.dir}}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	states := byName["ratchet_link_state"].GetMetric()
	if len(states) != 1 {
		t.Fatalf("ratchet_link_state on %s: %d series, want a's end only", n1.name, len(states))
	}
	if l := labelsOf(states[0]); l["pod"] != "a" || l["interface"] != "e1" || l["peer"] != "lab/b:w1" || l["kind"] != metrics.KindVXLAN ||
		l["state"] != "remote" || l["node"] != n1.name {
		t.Fatalf("ratchet_link_state on %s: %v", n1.name, l)
	}
	packets := map[string]float64{}
	for _, m := range byName["ratchet_link_receive_packets_total"].GetMetric() {
		packets[labelsOf(m)["pod"]] = m.GetCounter().GetValue()
	}
	if packets["a"] < count || packets["b"] < count {
		t.Fatalf("packets counted on %s toward a and b: %v, want at least %d each", n1.name, packets, count)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.Agent(n1.name, true, n1.agent.Stats)...)
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, f := range got {
		for _, m := range f.GetMetric() {
			seen[f.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if seen["ratchet_agent_etcd_reachable"] != 1 || seen["ratchet_agent_ready"] != 1 || seen["ratchet_agent_reconcile_passes_total"] < 1 {
		t.Fatalf("the agent's series: %v", seen)
	}
}
