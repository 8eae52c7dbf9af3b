package ctl

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// statsHeader heads the columns `links --stats` adds: the traffic toward
// the first END column's pod (→A), toward the second's (→B), and the
// carrier changes of each end's parked netdev (A/B). See
// podlink.LinkStats for where each is counted.
const statsHeader = "BYTES→A\tPKTS→A\tDROPS→A\tERRS→A\tBYTES→B\tPKTS→B\tDROPS→B\tERRS→B\tCARRIER"

// statsColumns prints a link's counters under statsHeader; "-" is a
// counter this node cannot read (the end is gone or on another node).
func statsColumns(s *podlink.LinkStats) string {
	if s == nil {
		s = &podlink.LinkStats{}
	}
	var cols []string
	for _, t := range s.Toward {
		if t == nil {
			cols = append(cols, "-", "-", "-", "-")
			continue
		}
		cols = append(cols, strconv.FormatUint(t.Bytes, 10), strconv.FormatUint(t.Packets, 10),
			strconv.FormatUint(t.Drops, 10), strconv.FormatUint(t.Errors, 10))
	}
	var carrier [2]string
	for i, c := range s.CarrierChanges {
		carrier[i] = "-"
		if c != nil {
			carrier[i] = strconv.FormatUint(uint64(*c), 10)
		}
	}
	cols = append(cols, carrier[0]+"/"+carrier[1])
	return strings.Join(cols, "\t")
}

// linksJSON is what `links -o json` prints: a small document meant to
// stay stable (fields are added, never renamed).
type linksJSON struct {
	Pods  []podJSON  `json:"pods"`
	Links []linkJSON `json:"links"`
}

type podJSON struct {
	Pod        string `json:"pod"`
	Netns      string `json:"netns"`
	Attachment string `json:"attachment"`
}

type linkJSON struct {
	ID    string        `json:"id"`
	State podlink.State `json:"state"`
	Added bool          `json:"added,omitempty"`
	Ends  [2]endJSON    `json:"ends"`
	// Settings are the run-time settings (store.Settings); absent: none.
	Settings *store.Settings `json:"settings,omitempty"`
	// Stats are there with --stats.
	Stats *podlink.LinkStats `json:"stats,omitempty"`
}

type endJSON struct {
	Pod    string `json:"pod"`
	IfName string `json:"ifName"`
}

// printLinksJSON prints the pods and links as linksJSON. JSON escapes
// control characters itself, so names need no quoting here.
func printLinksJSON(w io.Writer, pods []*store.PodRecord, views []podlink.LinkView) error {
	doc := linksJSON{Pods: []podJSON{}, Links: []linkJSON{}}
	for _, p := range pods {
		doc.Pods = append(doc.Pods, podJSON{Pod: p.Pod, Netns: p.Netns, Attachment: p.Attachment.String()})
	}
	for _, v := range views {
		l := linkJSON{ID: v.ID, State: v.State, Added: v.Added, Stats: v.Stats}
		if !v.Settings.IsZero() {
			l.Settings = v.Settings
		}
		for i, e := range v.Ends {
			l.Ends[i] = endJSON{Pod: e.Pod, IfName: e.IfName}
		}
		doc.Links = append(doc.Links, l)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
