package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// gather gathers c, as a scrape does, and returns each series of the
// family name by its interface label (or node, for a node's series).
func gather(t *testing.T, c *Links, name string) map[string]*dto.Metric {
	t.Helper()
	fams, err := c.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.Metric{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			key := ""
			for _, l := range m.Label {
				if l.GetName() == "interface" || l.GetName() == "node" && key == "" {
					key = l.GetValue()
				}
			}
			out[key] = m
		}
	}
	return out
}

// Without a parking namespace (a store whose pods' namespaces are gone),
// the settings still show, one series per end present, none for an end
// whose pod is gone; the impairment's units are Prometheus's.
func TestLinksReadsTheStoreAndConvertsSettings(t *testing.T) {
	dir := t.TempDir()
	st, err := store.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &store.LinkRecord{ID: "l1", Joined: true,
		Ends: [2]store.LinkEnd{
			{Pod: "lab/r1", IfName: "e1", Declared: true, Attachment: &store.AttachmentKey{Network: "lab", ContainerID: "c1", IfName: "eth0"}, Parked: "p1", ParkedIndex: 7},
			{Pod: "lab/r2", IfName: "w1"},
		},
		Settings: &store.Settings{Pulled: true, Toward: [2]*linkparam.Impairment{{Delay: 25 * time.Millisecond, Loss: 12.5, Rate: 8_000_000}}},
	}
	if err := st.PutLink(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	c := &Links{Node: "n1", StoreDir: dir}
	// client_golang's own checks of what a gatherer returns: names, types,
	// label sets consistent, no series twice.
	if _, err := (prometheus.Gatherers{c}).Gather(); err != nil {
		t.Fatalf("the families are not consistent: %v", err)
	}
	if ok := gather(t, c, "ratchet_links_read_ok"); ok["n1"].GetGauge().GetValue() != 1 {
		t.Fatalf("ratchet_links_read_ok: %v", ok)
	}
	for name, want := range map[string]float64{
		"ratchet_link_pulled":                           1,
		"ratchet_link_impairment_delay_seconds":         0.025,
		"ratchet_link_impairment_loss_ratio":            0.125,
		"ratchet_link_impairment_rate_bytes_per_second": 1e6,
		"ratchet_link_impairment_jitter_seconds":        0,
	} {
		got := gather(t, c, name)
		if len(got) != 1 || got["e1"] == nil {
			t.Errorf("%s: %v, want one series for e1 (r2's pod is gone)", name, got)
			continue
		}
		if v := got["e1"].GetGauge().GetValue(); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	// No parking namespace: the end's netdev is not there.
	states := gather(t, c, "ratchet_link_state")
	labels := map[string]string{}
	for _, l := range states["e1"].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["state"] != "broken" || labels["namespace"] != "lab" || labels["pod"] != "r1" || labels["peer"] != "lab/r2:w1" || labels["kind"] != KindVeth {
		t.Errorf("ratchet_link_state labels %v", labels)
	}
	if got := gather(t, c, "ratchet_link_receive_bytes_total"); len(got) != 0 {
		t.Errorf("counters without a parking namespace: %v", got)
	}
}

// A scrape that cannot have the node lock says so, and reports no link,
// rather than hang its scraper.
func TestLinksGivesUpOnABusyLock(t *testing.T) {
	dir := t.TempDir()
	lock, err := store.LockNode(context.Background(), dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	c := &Links{Node: "n1", StoreDir: dir, LockWait: 50 * time.Millisecond}
	start := time.Now()
	if ok := gather(t, c, "ratchet_links_read_ok"); ok["n1"].GetGauge().GetValue() != 0 {
		t.Fatalf("ratchet_links_read_ok with the lock held elsewhere: %v", ok)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the scrape waited %v", d)
	}
}

func TestSplitPod(t *testing.T) {
	for in, want := range map[string][2]string{"lab/r1": {"lab", "r1"}, "r1": {"", "r1"}, "a/b/c": {"a", "b/c"}} {
		if ns, name := splitPod(in); ns != want[0] || name != want[1] {
			t.Errorf("splitPod(%q) = %q, %q", in, ns, name)
		}
	}
}
