package ctl_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// linksDoc is the part of `links -o json` the tests read.
type linksDoc struct {
	Pods []struct {
		Pod string `json:"pod"`
	} `json:"pods"`
	Links []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Ends  [2]struct {
			Pod    string `json:"pod"`
			IfName string `json:"ifName"`
		} `json:"ends"`
		Settings *struct {
			Pulled bool `json:"pulled"`
		} `json:"settings"`
		Stats *struct {
			Toward [2]*struct {
				Bytes, Packets, Drops, Errors uint64
			} `json:"toward"`
			CarrierChanges [2]*uint32 `json:"carrierChanges"`
		} `json:"stats"`
	} `json:"links"`
}

func readStats(t *testing.T, dir string) linksDoc {
	t.Helper()
	var doc linksDoc
	out := mustCtl(t, nil, "links", "--store", dir, "--stats", "-o", "json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("links --stats -o json: %v\n%s", err, out)
	}
	if len(doc.Links) != 1 || doc.Links[0].Stats == nil {
		t.Fatalf("links --stats -o json: want one link with stats:\n%s", out)
	}
	s := doc.Links[0].Stats
	for i := range 2 {
		if s.Toward[i] == nil || s.CarrierChanges[i] == nil {
			t.Fatalf("end %d of a link with both ends here lacks counters:\n%s", i, out)
		}
	}
	return doc
}

// TestLinksStatsCountsBothDirections: pings of a known size from r1 to r2
// show as at least that many packets and bytes toward r2 (the requests)
// and toward r1 (the replies); a pulled cable shows in both parked ends'
// carrier changes.
func TestLinksStatsCountsBothDirections(t *testing.T) {
	dir, r1, _ := lab(t)
	before := readStats(t, dir)
	// Which end is r2's: the record's order is the store's, not ours.
	l := before.Links[0]
	toR2 := 0
	if l.Ends[1].Pod == "lab/r2" {
		toR2 = 1
	}
	const count, size = 50, 1000
	got, _, err := testutil.Burst(r1, "192.0.2.2", count, size)
	if err != nil || got != count {
		t.Fatalf("pings answered: %d of %d (%v)", got, count, err)
	}
	after := readStats(t, dir)
	// An echo of size bytes of payload is an Ethernet frame of 14 + 20 +
	// 8 + size bytes; the veth counts the frame without its FCS.
	const frame = 14 + 20 + 8 + size
	for i, who := range [2]string{"requests toward r2", "replies toward r1"} {
		end := toR2
		if i == 1 {
			end = 1 - toR2
		}
		b, a := before.Links[0].Stats.Toward[end], after.Links[0].Stats.Toward[end]
		if a.Packets-b.Packets < count || a.Bytes-b.Bytes < count*frame {
			t.Errorf("%s: +%d packets, +%d bytes; want at least %d and %d", who, a.Packets-b.Packets, a.Bytes-b.Bytes, count, count*frame)
		}
		if a.Packets-b.Packets > count+20 {
			t.Errorf("%s: +%d packets for %d pings: counted twice?", who, a.Packets-b.Packets, count)
		}
	}

	// The table shows the same counters under its own header.
	table := mustCtl(t, nil, "links", "--store", dir, "--stats")
	if !strings.Contains(table, "BYTES→A") || !strings.Contains(table, "CARRIER") || !hasRow(table, "up lab/r") {
		t.Errorf("links --stats:\n%s", table)
	}

	mustCtl(t, nil, "link", "down", "--store", dir, "lab/r1:e1")
	pulled := readStats(t, dir)
	if pulled.Links[0].State != "pulled" || pulled.Links[0].Settings == nil || !pulled.Links[0].Settings.Pulled {
		t.Errorf("after link down: state %q, settings %+v", pulled.Links[0].State, pulled.Links[0].Settings)
	}
	for i := range 2 {
		if b, a := *after.Links[0].Stats.CarrierChanges[i], *pulled.Links[0].Stats.CarrierChanges[i]; a <= b {
			t.Errorf("end %d's carrier changes: %d before the pull, %d after", i, b, a)
		}
	}
	// While pulled, r1's pings reach nothing: nothing more goes toward r2.
	if got, _, _ := testutil.Burst(r1, "192.0.2.2", 5, 56); got != 0 {
		t.Errorf("%d pings answered over a pulled cable", got)
	}
	still := readStats(t, dir)
	if b, a := pulled.Links[0].Stats.Toward[toR2], still.Links[0].Stats.Toward[toR2]; a.Packets != b.Packets {
		t.Errorf("a pulled cable carried %d packets toward r2", a.Packets-b.Packets)
	}
	mustCtl(t, nil, "link", "up", "--store", dir, "lab/r1:e1")
	testutil.MustPing(t, r1, "192.0.2.2")
}

// TestLinksJSONWithoutStats: -o json alone lists pods and links, and no
// counters.
func TestLinksJSONWithoutStats(t *testing.T) {
	dir, _, _ := lab(t)
	var doc linksDoc
	out := mustCtl(t, nil, "links", "--store", dir, "-o", "json")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Pods) != 2 || len(doc.Links) != 1 || doc.Links[0].State != "up" || doc.Links[0].Stats != nil || doc.Links[0].Settings != nil {
		t.Errorf("links -o json:\n%s", out)
	}
}

func TestLinksStatsBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"links", "--store", dir, "-o", "yaml"}, `-o "yaml": want json`},
		{[]string{"links", "--store", dir, "--stats", "--dot"}, "--dot and --stats"},
		{[]string{"links", "--store", dir, "--dot", "-o", "json"}, "--dot and -o"},
		{[]string{"links", "--store", dir, "--stats=maybe"}, `"maybe" for -stats`},
		{[]string{"links", "--store", dir, "--stats", "extra"}, `unexpected argument "extra"`},
	} {
		_, errOut, code := ctl(t, nil, c.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != 2 || !strings.Contains(lines[0], c.want) || !strings.HasPrefix(lines[0], "ratchetctl links: ") {
			t.Errorf("ratchetctl %v: exit %d, first line %q; want exit 2 naming %q", c.args, code, lines[0], c.want)
		}
	}
}
