package agent

import (
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// TestCheckAdded: an added link's record is acted on only when its ends
// are the link id's and each spec is a valid annotation link to the
// other end.
func TestCheckAdded(t *testing.T) {
	id, _ := store.LinkID("lab/a", "e2", "lab/b", "w2")
	rec := func(specA, specB string) *store.AddedLink {
		return &store.AddedLink{Ends: [2]store.AddedEnd{
			{Pod: "lab/a", IfName: "e2", Spec: []byte(specA)},
			{Pod: "lab/b", IfName: "w2", Spec: []byte(specB)},
		}}
	}
	okA := `{"name":"e2","ips":["203.0.113.1/24"],"peer":{"namespace":"lab","pod":"b","name":"w2"}}`
	okB := `{"name":"w2","peer":{"namespace":"lab","pod":"a","name":"e2"}}`
	specs, err := checkAdded(id, rec(okA, okB))
	if err != nil || specs[0] == nil || specs[1] == nil || specs[0].Name != "e2" || len(specs[0].IPs) != 1 {
		t.Fatalf("a good record: %+v, %v", specs, err)
	}
	for what, r := range map[string]*store.AddedLink{
		"not JSON":          rec(`{`, okB),
		"a peer elsewhere":  rec(`{"name":"e2","peer":{"namespace":"lab","pod":"c","name":"w2"}}`, okB),
		"another name":      rec(`{"name":"e3","peer":{"namespace":"lab","pod":"b","name":"w2"}}`, okB),
		"a bad address":     rec(`{"name":"e2","ips":["203.0.113.300/24"],"peer":{"namespace":"lab","pod":"b","name":"w2"}}`, okB),
		"no spec":           rec(okA, ``),
		"ends out of order": {Ends: [2]store.AddedEnd{rec(okA, okB).Ends[1], rec(okA, okB).Ends[0]}},
	} {
		if _, err := checkAdded(id, r); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	if _, err := checkAdded("not an id", rec(okA, okB)); err == nil {
		t.Error("a record under a key that is no link id: accepted")
	}
}
