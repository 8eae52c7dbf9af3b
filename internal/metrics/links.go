// Package metrics is what ratchetd exports to Prometheus: the node's pod
// links (their counters, states and run-time settings), read from the
// local store and the parking namespace when a scraper asks, and the
// agent's own health. Nothing is polled in the background: an idle node
// agent costs nothing between scrapes.
package metrics

import (
	"context"
	"log/slog"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/podlink"
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

// family is one of the link series' families: its name, help and type.
type family struct {
	name, help string
	typ        dto.MetricType
}

var (
	counter = dto.MetricType_COUNTER
	gauge   = dto.MetricType_GAUGE
)

// The link series, labelled (in this order, sorted by name) interface,
// kind, namespace, node, peer and pod: the end's pod (its namespace and
// name) and interface, the other end (namespace/pod:interface), the
// link's kind and the node that counted. The counters are one per
// direction: toward each end this node counts (both ends of a link on
// this node; toward the remote end too, counted where the traffic enters
// the tunnel, for a cross-node link), so what an interface sent is its
// peer's receive series. The state and settings are one per end whose pod
// is on this node.
var (
	famRxBytes = family{"ratchet_link_receive_bytes_total",
		"Bytes the link carried toward this interface (what the pod received through it), counted by the parked ends.", counter}
	famRxPackets = family{"ratchet_link_receive_packets_total",
		"Packets the link carried toward this interface.", counter}
	famRxDrops = family{"ratchet_link_receive_drops_total",
		"Packets toward this interface that the parked ends dropped on the way.", counter}
	famRxErrors = family{"ratchet_link_receive_errors_total",
		"Packets toward this interface that the parked ends counted as errors.", counter}
	famCarrier = family{"ratchet_link_carrier_changes_total",
		"Carrier changes of this end's parked netdev: each cable pull, plug, pod start or end.", counter}
	famState = family{"ratchet_link_state",
		"The link's state (the state label: up, pending, parked, remote, broken, pulled or impaired), always 1.", gauge}
	famPulled = family{"ratchet_link_pulled",
		"1 while the link's cable is pulled (ratchetctl link down), else 0.", gauge}
	famDelay = family{"ratchet_link_impairment_delay_seconds",
		"Delay added to the traffic toward this interface (ratchetctl link set).", gauge}
	famJitter = family{"ratchet_link_impairment_jitter_seconds",
		"Jitter of the delay added to the traffic toward this interface.", gauge}
	famLoss = family{"ratchet_link_impairment_loss_ratio",
		"Share (0 to 1) of the packets toward this interface that are dropped on purpose.", gauge}
	famCorrupt = family{"ratchet_link_impairment_corrupt_ratio",
		"Share (0 to 1) of the packets toward this interface that are corrupted on purpose.", gauge}
	famDuplicate = family{"ratchet_link_impairment_duplicate_ratio",
		"Share (0 to 1) of the packets toward this interface that are duplicated on purpose.", gauge}
	famReorder = family{"ratchet_link_impairment_reorder_ratio",
		"Share (0 to 1) of the packets toward this interface that are sent out of order on purpose.", gauge}
	famRate = family{"ratchet_link_impairment_rate_bytes_per_second",
		"Rate limit of the traffic toward this interface, in bytes per second.", gauge}
	famReadOK = family{"ratchet_links_read_ok",
		"1 when this scrape read the node's links, 0 when it could not (the node lock stayed busy, or the store failed).", gauge}
)

// families is the order the families are served in.
var families = []*family{&famReadOK, &famRxBytes, &famRxPackets, &famRxDrops, &famRxErrors, &famCarrier, &famState, &famPulled,
	&famDelay, &famJitter, &famLoss, &famCorrupt, &famDuplicate, &famReorder, &famRate}

// Links is a prometheus.Gatherer of the node's pod links: serve it next
// to a registry's (Gatherers). Each scrape takes the node lock only to
// read the records (so an ADD waits at most for that read, and a scrape
// never sees a half-done ADD), then releases it and asks the kernel: one
// dump of the parking namespace's netdevs for every counter, as
// `ratchetctl links --stats` does.
//
// It builds the families itself rather than through a Collector's const
// metrics: at a thousand links a Collector's per-series checks (label
// validation, the registry's sorting and duplicate hashing) cost about as
// much as the kernel's answers, against an idle budget (docs/performance.md).
// Its series are consistent by construction: fixed names and label sets,
// one series per end and family.
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

// Gather reads the links now and returns their families; one that could
// not be read is ratchet_links_read_ok 0 and no link series, not an
// error, so the rest of the scrape still serves.
func (c *Links) Gather() ([]*dto.MetricFamily, error) {
	out := map[*family]*dto.MetricFamily{}
	for _, f := range families {
		out[f] = &dto.MetricFamily{Name: proto.String(f.name), Help: proto.String(f.help), Type: f.typ.Enum()}
	}
	ok := 1.0
	views, err := c.read()
	if err != nil {
		if c.Log != nil {
			c.Log.Warn("metrics: cannot read the node's links", "error", err)
		}
		ok, views = 0, nil
	}
	add(out[&famReadOK], []*dto.LabelPair{pair("node", c.Node)}, gauge, ok)
	for _, v := range views {
		c.gatherLink(out, v)
	}
	fams := make([]*dto.MetricFamily, 0, len(families))
	for _, f := range families {
		if len(out[f].Metric) > 0 {
			fams = append(fams, out[f])
		}
	}
	return fams, nil
}

func pair(name, value string) *dto.LabelPair {
	return &dto.LabelPair{Name: proto.String(name), Value: proto.String(value)}
}

// add appends a series to fam; labels may be shared with other series:
// nothing changes them once built.
func add(fam *dto.MetricFamily, labels []*dto.LabelPair, typ dto.MetricType, v float64) {
	m := &dto.Metric{Label: labels}
	if typ == counter {
		m.Counter = &dto.Counter{Value: proto.Float64(v)}
	} else {
		m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
	}
	fam.Metric = append(fam.Metric, m)
}

// read reads the links with labop.View: the records under the node lock,
// then, with it released, their views against the parking namespace.
func (c *Links) read() ([]podlink.LinkView, error) {
	wait := c.LockWait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var views []podlink.LinkView
	err := labop.View(ctx, c.StoreDir, wait, true, func(lab *labop.Lab) error {
		views = lab.Links
		return nil
	})
	return views, err
}

// gatherLink adds the series of v: the traffic toward each end this node
// counts, and the state and settings of each end whose pod is here.
func (c *Links) gatherLink(out map[*family]*dto.MetricFamily, v podlink.LinkView) {
	kind := KindVeth
	if v.Remote {
		kind = KindVXLAN
	}
	for i, e := range v.Ends {
		other := v.Ends[1-i]
		namespace, pod := splitPod(e.Pod)
		labels := []*dto.LabelPair{pair("interface", e.IfName), pair("kind", kind), pair("namespace", namespace),
			pair("node", c.Node), pair("peer", other.Pod+":"+other.IfName), pair("pod", pod)}
		set := func(f *family, val float64) { add(out[f], labels, f.typ, val) }
		if s := v.Stats; s != nil {
			if t := s.Toward[i]; t != nil {
				set(&famRxBytes, float64(t.Bytes))
				set(&famRxPackets, float64(t.Packets))
				set(&famRxDrops, float64(t.Drops))
				set(&famRxErrors, float64(t.Errors))
			}
			if cc := s.CarrierChanges[i]; cc != nil {
				set(&famCarrier, float64(*cc))
			}
		}
		if e.Attachment == nil {
			continue // the pod is gone, or on another node: not this node's to tell
		}
		// The state label sorts after the others.
		add(out[&famState], append(labels[:len(labels):len(labels)], pair("state", string(v.State))), gauge, 1)
		pulled := 0.0
		if v.Settings != nil && v.Settings.Pulled {
			pulled = 1
		}
		set(&famPulled, pulled)
		if v.Settings != nil {
			if m := v.Settings.Toward[i]; !m.IsZero() {
				set(&famDelay, m.Delay.Seconds())
				set(&famJitter, m.Jitter.Seconds())
				set(&famLoss, m.Loss/100)
				set(&famCorrupt, m.Corrupt/100)
				set(&famDuplicate, m.Duplicate/100)
				set(&famReorder, m.Reorder/100)
				set(&famRate, float64(m.Rate)/8)
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
