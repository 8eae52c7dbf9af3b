package podlink

import (
	"slices"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/store"
)

var (
	keyA = store.AttachmentKey{Network: "lab", ContainerID: "a1", IfName: "eth0"}
	keyB = store.AttachmentKey{Network: "lab", ContainerID: "b1", IfName: "eth0"}
)

// end builds a link end of pod; present ends are made by key and parked
// at index.
func end(pod string, declared bool, key *store.AttachmentKey, index int) store.LinkEnd {
	e := store.LinkEnd{Pod: pod, IfName: "l-" + pod, Declared: declared}
	if key != nil {
		k := *key
		e.Attachment, e.Parked, e.ParkedIndex = &k, "rp"+pod, index
	}
	return e
}

func record(joined bool, a, b store.LinkEnd) *store.LinkRecord {
	return &store.LinkRecord{ID: "a:l-a--b:l-b", Ends: [2]store.LinkEnd{a, b}, Joined: joined}
}

// parked observes both ends' parked netdevs as there (when recorded) and,
// with stitched, stitched to each other.
func parked(r *store.LinkRecord, stitched bool) Observation {
	obs := Observation{Parking: true}
	for i, e := range r.Ends {
		obs.Ends[i].Parked = e.Attachment != nil
		if stitched {
			obs.Ends[i].StitchedTo = r.Ends[1-i].ParkedIndex
		}
	}
	return obs
}

func TestStateOf(t *testing.T) {
	up := record(true, end("a", true, &keyA, 10), end("b", true, &keyB, 11))
	lone := record(false, end("a", true, &keyA, 10), end("b", false, nil, 0))
	for _, tc := range []struct {
		name string
		rec  *store.LinkRecord
		obs  Observation
		want State
	}{
		{"both stitched", up, parked(up, true), StateUp},
		{"both there, not stitched", up, parked(up, false), StateBroken},
		{"a parked netdev vanished", up, Observation{Parking: true, Ends: [2]EndObs{{Parked: true, StitchedTo: 11}}}, StateBroken},
		{"no parking namespace", lone, Observation{}, StateBroken},
		{"one end, never joined", lone, parked(lone, false), StatePending},
		{"one end, joined once", record(true, lone.Ends[0], lone.Ends[1]), parked(lone, false), StateParked},
		{"one end on a tunnel", lone, Observation{Parking: true, Ends: [2]EndObs{{Parked: true, StitchedTo: 99, ToTunnel: true}}}, StateRemote},
		{"one end stitched to a veth", lone, Observation{Parking: true, Ends: [2]EndObs{{Parked: true, StitchedTo: 99}}}, StatePending},
		{"nobody there", record(false, end("a", true, nil, 0), end("b", false, nil, 0)), Observation{}, StatePending},
	} {
		if got := StateOf(tc.rec, tc.obs); got != tc.want {
			t.Errorf("%s: state %q, want %q", tc.name, got, tc.want)
		}
	}
}

func steps(ss ...Step) []Step { return ss }

func TestDecisions(t *testing.T) {
	pendingA := record(false, end("a", true, &keyA, 10), end("b", false, nil, 0))
	upAB := record(true, end("a", true, &keyA, 10), end("b", true, &keyB, 11))
	parkedA := record(true, end("a", true, &keyA, 10), end("b", false, nil, 0))
	fresh := record(false, end("a", true, nil, 0), end("b", false, nil, 0))
	for _, tc := range []struct {
		name       string
		from       State
		decide     func() Decision
		wantSteps  []Step
		wantState  State
		checkAfter func(t *testing.T, next *store.LinkRecord)
	}{
		{
			name: "ADD of the first end", from: StatePending,
			decide:    func() Decision { return OnAdd(fresh, 0, keyA, parked(fresh, false)) },
			wantSteps: steps(Step{MakeEnd, 0}), wantState: StatePending,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if n.Ends[0].Attachment == nil || *n.Ends[0].Attachment != keyA || n.Joined {
					t.Errorf("next %+v", n)
				}
			},
		},
		{
			name: "ADD of the peer, declared and present", from: StatePending,
			decide: func() Decision {
				r := *pendingA
				r.Ends[1].Declared = true
				return OnAdd(&r, 1, keyB, parked(&r, false))
			},
			wantSteps: steps(Step{MakeEnd, 1}, Step{Stitch, 1}, Step{Plug, 1}, Step{Plug, 0}), wantState: StateUp,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if !n.Joined {
					t.Error("not joined")
				}
			},
		},
		{
			name: "ADD of the peer, whose peer's parked end vanished", from: StateBroken,
			decide: func() Decision {
				r := *pendingA
				r.Ends[1].Declared = true
				return OnAdd(&r, 1, keyB, Observation{Parking: true})
			},
			wantSteps: steps(Step{ForgetEnd, 0}, Step{MakeEnd, 1}), wantState: StatePending,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if n.Ends[0].Attachment != nil || n.Ends[0].ParkedIndex != 0 {
					t.Errorf("vanished end not forgotten: %+v", n.Ends[0])
				}
				if pendingA.Ends[0].Attachment == nil {
					t.Error("the decision changed its input")
				}
			},
		},
		{
			name: "ADD of a parked link's peer coming back", from: StateParked,
			decide: func() Decision {
				r := *parkedA
				r.Ends[1].Declared = true
				return OnAdd(&r, 1, keyB, parked(&r, false))
			},
			wantSteps: steps(Step{MakeEnd, 1}, Step{Stitch, 1}, Step{Plug, 1}, Step{Plug, 0}), wantState: StateUp,
		},
		{
			name: "ADD of a new incarnation while the old one's end is there", from: StateUp,
			decide:    func() Decision { return OnAdd(upAB, 0, keyA, parked(upAB, true)) },
			wantSteps: steps(Step{UnplugStale, 0}, Step{MakeEnd, 0}, Step{Stitch, 0}, Step{Plug, 0}, Step{Plug, 1}), wantState: StateUp,
		},
		{
			name: "DEL of one end of an up link", from: StateUp,
			decide:    func() Decision { return OnRelease(upAB, "b", keyB, true) },
			wantSteps: steps(Step{ForgetEnd, 1}, Step{Unplug, 0}, Step{PutRecord, 0}), wantState: StateParked,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if n.Ends[1].Declared || n.Ends[1].Attachment != nil {
					t.Errorf("released end still there: %+v", n.Ends[1])
				}
			},
		},
		{
			name: "DEL of the last end", from: StatePending,
			decide:    func() Decision { return OnRelease(pendingA, "a", keyA, true) },
			wantSteps: steps(Step{ForgetEnd, 0}, Step{DeleteRecord, 0}), wantState: StateNone,
		},
		{
			name: "DEL of another attachment of the pod (a newer one holds the end)", from: StateUp,
			decide: func() Decision {
				return OnRelease(upAB, "b", store.AttachmentKey{Network: "lab", ContainerID: "b0", IfName: "eth0"}, true)
			},
			wantSteps: nil, wantState: StateUp,
		},
		{
			name: "DEL after an ADD killed before it recorded its end", from: StatePending,
			decide:    func() Decision { return OnRelease(pendingA, "b", keyB, true) },
			wantSteps: steps(Step{Unplug, 0}), wantState: StatePending,
		},
		{
			name: "GC without a parking namespace", from: StateBroken,
			decide:    func() Decision { return OnRelease(upAB, "a", keyA, false) },
			wantSteps: steps(Step{ForgetEnd, 0}, Step{PutRecord, 0}), wantState: StateBroken,
		},
		{
			name: "CHECK of an up link", from: StateUp,
			decide:    func() Decision { return OnCheck(upAB, 0, parked(upAB, true)) },
			wantSteps: steps(Step{VerifyJoined, 0}), wantState: StateUp,
		},
		{
			name: "CHECK of a pending link", from: StatePending,
			decide:    func() Decision { return OnCheck(pendingA, 0, parked(pendingA, false)) },
			wantSteps: steps(Step{VerifyEnd, 0}), wantState: StatePending,
		},
		{
			name: "peer registered on another node", from: StatePending,
			decide:    func() Decision { return OnPeerRegistered(pendingA, 0, nil, parked(pendingA, false)) },
			wantSteps: steps(Step{Tunnel, 0}, Step{Plug, 0}), wantState: StateRemote,
		},
		{
			name: "remote peer gone", from: StateRemote,
			decide: func() Decision {
				return OnPeerGone(pendingA, 0, Observation{Parking: true, Ends: [2]EndObs{{Parked: true, StitchedTo: 99, ToTunnel: true}}})
			},
			wantSteps: steps(Step{Unplug, 0}), wantState: StatePending,
		},
		{
			name: "remote peer came to this node, tunnel took the stitch", from: StateBroken,
			decide: func() Decision {
				return OnPeerGone(upAB, 0, Observation{Parking: true, Ends: [2]EndObs{{Parked: true, StitchedTo: 99, ToTunnel: true}, {Parked: true, StitchedTo: 10}}})
			},
			wantSteps: steps(Step{Stitch, 0}), wantState: StateUp,
		},
		{
			name: "remote peer came to this node, stitch intact", from: StateUp,
			decide:    func() Decision { return OnPeerGone(upAB, 0, parked(upAB, true)) },
			wantSteps: nil, wantState: StateUp,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.decide()
			if !slices.Equal(d.Steps, tc.wantSteps) {
				t.Errorf("steps %v, want %v", d.Steps, tc.wantSteps)
			}
			if d.State != tc.wantState {
				t.Errorf("%s → %q, want %q", tc.from, d.State, tc.wantState)
			}
			if tc.checkAfter != nil {
				tc.checkAfter(t, &d.Next)
			}
		})
	}
}

func TestUndoRunsStepsBeforeReleasingWhatTheyUse(t *testing.T) {
	var order []string
	u := NewUndo(nil)
	closed := false
	u.Own(func() { closed = true; order = append(order, "close") })
	u.Push("first", func() error { order = append(order, "first"); return nil })
	u.Push("second", func() error {
		if closed {
			t.Error("an undo step ran after what it uses was released")
		}
		order = append(order, "second")
		return errFailed
	})
	u.Finish(false)
	if want := []string{"second", "first", "close"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v (a failed step must not stop the rest)", order, want)
	}
	order = nil
	u.Push("kept", func() error { order = append(order, "kept"); return nil })
	u.Own(func() { order = append(order, "close") })
	u.Finish(true)
	if want := []string{"close"}; !slices.Equal(order, want) {
		t.Fatalf("after success: %v, want %v", order, want)
	}
}

type failed struct{}

func (failed) Error() string { return "failed" }

var errFailed error = failed{}
