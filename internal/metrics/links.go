// Package metrics is what ratchetd exports to Prometheus: the node's pod
// links (their counters, states and run-time settings), read from the
// local store and the parking namespace when a scraper asks, and the
// agent's own health. Nothing is polled in the background: an idle node
// agent costs nothing between scrapes.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Link kinds, the kind label: how a link's two ends meet.
const (
	// KindVeth: both ends are on this node, stitched in the parking
	// namespace.
	KindVeth = "veth"
	// KindVXLAN: the end here is stitched to a tunnel toward its peer on
	// another node.
	KindVXLAN = "vxlan"
)

// DefaultLockWait is how long a scrape waits for the node lock, which an
// ADD or DEL holds for its whole run: past it, the scrape reports no
// links (and an error) rather than hang the scraper.
const DefaultLockWait = 2 * time.Second

// endLabels label every per-end series: the end's pod (its namespace and
// name), its interface, the other end (namespace/pod:interface), the
// link's kind and the node that counted.
var endLabels = []string{"namespace", "pod", "interface", "peer", "kind", "node"}

func endDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), endLabels...), extra...), nil)
}

// The link series. The counters are one per direction: toward each end
// this node counts (both ends of a link on this node; toward the remote
// end too, counted where the tunnel's traffic leaves, for a cross-node
// link), so what an interface sent is its peer's receive series. The
// state and settings are one per end whose pod is on this node.
var (
	descRxBytes = endDesc("ratchet_link_receive_bytes_total",
		"Bytes the link carried toward this interface (what the pod received through it), counted by the parked ends.")
	descRxPackets = endDesc("ratchet_link_receive_packets_total",
		"Packets the link carried toward this interface.")
	descRxDrops = endDesc("ratchet_link_receive_drops_total",
		"Packets toward this interface that the parked ends dropped on the way.")
	descRxErrors = endDesc("ratchet_link_receive_errors_total",
		"Packets toward this interface that the parked ends counted as errors.")
	descCarrier = endDesc("ratchet_link_carrier_changes_total",
		"Carrier changes of this end's parked netdev: each cable pull, plug, pod start or end.")
	descState = endDesc("ratchet_link_state",
		"The link's state (the state label; up, pending, parked, remote, broken, pulled or impaired), always 1.", "state")
	descPulled = endDesc("ratchet_link_pulled",
		"1 while the link's cable is pulled (ratchetctl link down), else 0.")
	descDelay = endDesc("ratchet_link_impairment_delay_seconds",
		"Delay added to the traffic toward this interface (ratchetctl link set).")
	descJitter = endDesc("ratchet_link_impairment_jitter_seconds",
		"Jitter of the delay added to the traffic toward this interface.")
	descLoss = endDesc("ratchet_link_impairment_loss_ratio",
		"Share (0 to 1) of the packets toward this interface that are dropped on purpose.")
	descCorrupt = endDesc("ratchet_link_impairment_corrupt_ratio",
		"Share (0 to 1) of the packets toward this interface that are corrupted on purpose.")
	descDuplicate = endDesc("ratchet_link_impairment_duplicate_ratio",
		"Share (0 to 1) of the packets toward this interface that are duplicated on purpose.")
	descReorder = endDesc("ratchet_link_impairment_reorder_ratio",
		"Share (0 to 1) of the packets toward this interface that are sent out of order on purpose.")
	descRate = endDesc("ratchet_link_impairment_rate_bytes_per_second",
		"Rate limit of the traffic toward this interface, in bytes per second.")
	descScrapeOK = prometheus.NewDesc("ratchet_links_read_ok",
		"1 when this scrape read the node's links, 0 when it could not (the node lock stayed busy, or the store failed).", []string{"node"}, nil)
)

// Links is a prometheus.Collector of the node's pod links. Each scrape
// takes the node lock only to read the records (so an ADD waits at most
// for that read, and a scrape never sees a half-done ADD), then releases
// it and asks the kernel: one dump of the parking namespace's netdevs for
// every counter, as `ratchetctl links --stats` does.
type Links struct {
	// Node is the node label.
	Node string
	// StoreDir is the node's local store, as the plugin's store.dir.
	StoreDir string
	// LockWait bounds the wait for the node lock (0: DefaultLockWait).
	LockWait time.Duration
	// Log gets what a scrape could not read.
	Log *slog.Logger
}

var allDescs = []*prometheus.Desc{descRxBytes, descRxPackets, descRxDrops, descRxErrors, descCarrier, descState, descPulled,
	descDelay, descJitter, descLoss, descCorrupt, descDuplicate, descReorder, descRate, descScrapeOK}

// Describe sends every series' description.
func (c *Links) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the links now and sends their series.
func (c *Links) Collect(ch chan<- prometheus.Metric) {
	views, err := c.read()
	if err != nil {
		if c.Log != nil {
			c.Log.Warn("metrics: cannot read the node's links", "error", err)
		}
		ch <- prometheus.MustNewConstMetric(descScrapeOK, prometheus.GaugeValue, 0, c.Node)
		return
	}
	ch <- prometheus.MustNewConstMetric(descScrapeOK, prometheus.GaugeValue, 1, c.Node)
	for _, v := range views {
		c.collectLink(ch, v)
	}
}

// read reads the records under the node lock, then views them against
// the parking namespace without it.
func (c *Links) read() ([]podlink.LinkView, error) {
	wait := c.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	lock, err := store.LockNode(ctx, c.StoreDir, wait)
	if err != nil {
		return nil, err
	}
	recs, path, err := func() (recs []*store.LinkRecord, path string, err error) {
		st, err := lock.Open()
		if err != nil {
			return nil, "", err
		}
		defer func() { err = errors.Join(err, st.Close()) }()
		if recs, err = st.Links(ctx); err != nil {
			return nil, "", err
		}
		path, err = st.Meta(ctx, parking.MetaKey)
		return recs, path, err
	}()
	if uerr := lock.Unlock(); uerr != nil && c.Log != nil {
		c.Log.Error("metrics: release the node lock", "error", uerr)
	}
	if err != nil {
		return nil, err
	}
	var park ns.NetNS
	if path != "" {
		// A namespace gone with a reboot: every link reads as without a
		// parking namespace, as in `ratchetctl links`.
		if park, err = ns.GetNS(path); err != nil {
			park = nil
		} else {
			defer park.Close()
		}
	}
	views, err := podlink.ViewRecords(recs, park, true)
	if err != nil {
		return nil, fmt.Errorf("parking namespace %s: %w", path, err)
	}
	return views, nil
}

// collectLink sends the series of v: the traffic toward each end this
// node counts, and the state and settings of each end whose pod is here.
func (c *Links) collectLink(ch chan<- prometheus.Metric, v podlink.LinkView) {
	kind := KindVeth
	if v.Remote {
		kind = KindVXLAN
	}
	for i, e := range v.Ends {
		other := v.Ends[1-i]
		namespace, pod := splitPod(e.Pod)
		labels := []string{namespace, pod, e.IfName, other.Pod + ":" + other.IfName, kind, c.Node}
		counter := func(d *prometheus.Desc, val uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(val), labels...)
		}
		gauge := func(d *prometheus.Desc, val float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, val, labels...)
		}
		if s := v.Stats; s != nil {
			if t := s.Toward[i]; t != nil {
				counter(descRxBytes, t.Bytes)
				counter(descRxPackets, t.Packets)
				counter(descRxDrops, t.Drops)
				counter(descRxErrors, t.Errors)
			}
			if cc := s.CarrierChanges[i]; cc != nil {
				counter(descCarrier, uint64(*cc))
			}
		}
		if e.Attachment == nil {
			continue // the pod is gone, or on another node: not this node's to tell
		}
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, append(labels, string(v.State))...)
		pulled := 0.0
		if v.Settings != nil && v.Settings.Pulled {
			pulled = 1
		}
		gauge(descPulled, pulled)
		if v.Settings != nil {
			if m := v.Settings.Toward[i]; !m.IsZero() {
				gauge(descDelay, m.Delay.Seconds())
				gauge(descJitter, m.Jitter.Seconds())
				gauge(descLoss, m.Loss/100)
				gauge(descCorrupt, m.Corrupt/100)
				gauge(descDuplicate, m.Duplicate/100)
				gauge(descReorder, m.Reorder/100)
				gauge(descRate, float64(m.Rate)/8)
			}
		}
	}
}

// splitPod splits the store's "namespace/name" of a pod; a name without
// a namespace has an empty namespace label.
func splitPod(p string) (namespace, name string) {
	if ns, name, ok := strings.Cut(p, "/"); ok {
		return ns, name
	}
	return "", p
}
