package podlink

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

func TestStatsOfDirections(t *testing.T) {
	att := &store.AttachmentKey{Network: "lab", ContainerID: "c", IfName: "eth0"}
	both := &store.LinkRecord{ID: "l1", Ends: [2]store.LinkEnd{
		{Pod: "lab/a", IfName: "e1", Attachment: att, Parked: "pa", ParkedIndex: 10},
		{Pod: "lab/b", IfName: "e1", Attachment: att, Parked: "pb", ParkedIndex: 11},
	}}
	// b is on another node (or gone): only a's parked end counts.
	lone := &store.LinkRecord{ID: "l2", Ends: [2]store.LinkEnd{
		{Pod: "lab/a", IfName: "e2", Attachment: att, Parked: "pc", ParkedIndex: 12},
		{Pod: "lab/c", IfName: "e1"},
	}}
	// The recorded index now holds another netdev: nothing to count.
	stale := &store.LinkRecord{ID: "l3", Ends: [2]store.LinkEnd{
		{Pod: "lab/a", IfName: "e3", Attachment: att, Parked: "pd", ParkedIndex: 13},
		{Pod: "lab/d", IfName: "e1"},
	}}
	devs := map[int]link.NetdevCounters{
		10: {Name: "pa", Counters: link.Counters{RxBytes: 100, RxPackets: 1, RxDropped: 2, RxErrors: 3,
			TxBytes: 200, TxPackets: 4, TxDropped: 5, TxErrors: 6, CarrierChanges: 7}},
		11: {Name: "pb", Counters: link.Counters{RxBytes: 300, RxPackets: 8, RxDropped: 9, RxErrors: 10,
			TxBytes: 400, TxPackets: 11, TxDropped: 12, TxErrors: 13, CarrierChanges: 14}},
		12: {Name: "pc", Counters: link.Counters{RxBytes: 500, RxPackets: 15, RxDropped: 16, TxBytes: 600, TxPackets: 17, CarrierChanges: 2}},
		13: {Name: "other"},
	}
	got := StatsOf([]*store.LinkRecord{both, lone, stale}, devs)
	want := [2]Traffic{{Bytes: 200, Packets: 4, Drops: 5 + 9, Errors: 6 + 10}, {Bytes: 400, Packets: 11, Drops: 12 + 2, Errors: 13 + 3}}
	for i := range 2 {
		if got[0].Toward[i] == nil || *got[0].Toward[i] != want[i] {
			t.Errorf("both here, toward %d: %+v, want %+v", i, got[0].Toward[i], want[i])
		}
	}
	if got[0].CarrierChanges[0] == nil || *got[0].CarrierChanges[0] != 7 || got[0].CarrierChanges[1] == nil || *got[0].CarrierChanges[1] != 14 {
		t.Errorf("carrier changes: %v", got[0].CarrierChanges)
	}
	if w := (Traffic{Bytes: 600, Packets: 17}); got[1].Toward[0] == nil || *got[1].Toward[0] != w {
		t.Errorf("lone end, toward its own pod: %+v", got[1].Toward[0])
	}
	if w := (Traffic{Bytes: 500, Packets: 15, Drops: 16}); got[1].Toward[1] == nil || *got[1].Toward[1] != w {
		t.Errorf("lone end, toward the far pod: %+v", got[1].Toward[1])
	}
	if got[1].CarrierChanges[1] != nil {
		t.Errorf("the far end's carrier counted here: %v", *got[1].CarrierChanges[1])
	}
	if got[2].Toward != [2]*Traffic{} || got[2].CarrierChanges != [2]*uint32{} {
		t.Errorf("a stale index was counted: %+v", got[2])
	}
}
