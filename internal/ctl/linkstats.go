package ctl

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/labop"
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

// printLinksJSON prints the pods and links as labop's Document.
func printLinksJSON(w io.Writer, pods []*store.PodRecord, views []podlink.LinkView) error {
	doc := labop.DocumentOf(pods, views)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
