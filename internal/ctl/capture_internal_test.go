package ctl

import (
	"errors"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

func TestCaptureSide(t *testing.T) {
	key := &store.AttachmentKey{}
	here := podlink.EndObs{Parked: true}
	for _, c := range []struct {
		name     string
		attached [2]bool
		obs      [2]podlink.EndObs
		mine     int
		want     int
		err      error
	}{
		{"both ends here: the named one", [2]bool{true, true}, [2]podlink.EndObs{here, here}, 1, 1, nil},
		{"named end on another node: the end here", [2]bool{true, false}, [2]podlink.EndObs{here, {}}, 1, 0, nil},
		{"named end here, peer on another node", [2]bool{true, false}, [2]podlink.EndObs{here, {}}, 0, 0, nil},
		{"recorded but its netdev is gone", [2]bool{true, false}, [2]podlink.EndObs{{}, {}}, 0, 0, errNotHere},
		{"no end here", [2]bool{false, false}, [2]podlink.EndObs{}, 0, 0, errNotHere},
	} {
		rec := &store.LinkRecord{}
		for i, a := range c.attached {
			if a {
				rec.Ends[i].Attachment = key
			}
		}
		got, err := captureSide(rec, c.mine, podlink.Observation{Parking: true, Ends: c.obs})
		if !errors.Is(err, c.err) || err == nil && got != c.want {
			t.Errorf("%s: end %d, %v; want %d, %v", c.name, got, err, c.want, c.err)
		}
	}
}
