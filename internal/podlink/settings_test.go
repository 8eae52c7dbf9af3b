package podlink

import (
	"slices"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/store"
)

var (
	slow  = &linkparam.Impairment{Rate: 10e6}
	later = &linkparam.Impairment{Delay: 10 * time.Millisecond}
)

// with returns a copy of r with settings s.
func with(r *store.LinkRecord, s store.Settings) *store.LinkRecord {
	c := *r
	c.Settings = &s
	return &c
}

func TestStateOfSettings(t *testing.T) {
	up := record(true, end("a", true, &keyA, 10), end("b", true, &keyB, 11))
	lone := record(true, end("a", true, &keyA, 10), end("b", false, nil, 0))
	pulled := store.Settings{Pulled: true}
	impaired := store.Settings{Toward: [2]*linkparam.Impairment{nil, slow}}
	for _, tc := range []struct {
		name string
		rec  *store.LinkRecord
		obs  Observation
		want State
	}{
		{"pulled, both there", with(up, pulled), parked(up, true), StatePulled},
		{"pulled, one end parked", with(lone, pulled), parked(lone, false), StatePulled},
		{"pulled and impaired", with(up, store.Settings{Pulled: true, Toward: impaired.Toward}), parked(up, true), StatePulled},
		{"pulled, but a parked end vanished", with(up, pulled), Observation{Parking: true, Ends: [2]EndObs{{Parked: true, StitchedTo: 11}}}, StateBroken},
		{"impaired, up", with(up, impaired), parked(up, true), StateImpaired},
		{"impaired, not stitched", with(up, impaired), parked(up, false), StateBroken},
		{"impaired, one end parked", with(lone, impaired), parked(lone, false), StateParked},
		{"empty settings", with(up, store.Settings{Toward: [2]*linkparam.Impairment{{}, nil}}), parked(up, true), StateUp},
	} {
		if got := StateOf(tc.rec, tc.obs); got != tc.want {
			t.Errorf("%s: state %q, want %q", tc.name, got, tc.want)
		}
	}
	onTunnel := Observation{Parking: true, Ends: [2]EndObs{{Parked: true, StitchedTo: 99, ToTunnel: true}}}
	pending := record(false, end("a", true, &keyA, 10), end("b", false, nil, 0))
	if !Remote(with(pending, pulled), onTunnel) || StateOf(with(pending, pulled), onTunnel) != StatePulled {
		t.Error("a pulled link on a tunnel is not remote underneath")
	}
	if Remote(with(up, pulled), parked(up, true)) {
		t.Error("a local link is remote")
	}
}

func TestSettingsDecisions(t *testing.T) {
	upAB := record(true, end("a", true, &keyA, 10), end("b", true, &keyB, 11))
	parkedA := record(true, end("a", true, &keyA, 10), end("b", true, nil, 0))
	pulledAB := with(upAB, store.Settings{Pulled: true})
	pulledA := with(parkedA, store.Settings{Pulled: true})
	towardB := with(upAB, store.Settings{Toward: [2]*linkparam.Impairment{nil, slow}})
	for _, tc := range []struct {
		name       string
		from       State
		decide     func() Decision
		wantSteps  []Step
		wantState  State
		checkAfter func(t *testing.T, next *store.LinkRecord)
	}{
		{
			name: "pull an up link", from: StateUp,
			decide:    func() Decision { return OnPull(upAB, parked(upAB, true)) },
			wantSteps: steps(Step{Pull, 0}, Step{Pull, 1}, Step{PutRecord, 0}), wantState: StatePulled,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if !n.Pulled() || upAB.Settings != nil {
					t.Errorf("next %+v, input %+v", n.Settings, upAB.Settings)
				}
			},
		},
		{
			name: "pull a parked link: only the end that is there", from: StateParked,
			decide:    func() Decision { return OnPull(parkedA, parked(parkedA, false)) },
			wantSteps: steps(Step{Pull, 0}, Step{PutRecord, 0}), wantState: StatePulled,
		},
		{
			name: "restore a pulled link", from: StatePulled,
			decide:    func() Decision { return OnRestore(pulledAB, parked(pulledAB, true)) },
			wantSteps: steps(Step{Restore, 0}, Step{Restore, 1}, Step{PutRecord, 0}), wantState: StateUp,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if n.Settings != nil {
					t.Errorf("settings left: %+v", n.Settings)
				}
				if !pulledAB.Pulled() {
					t.Error("the decision changed its input")
				}
			},
		},
		{
			name: "restore a pulled link whose peer is gone: its end stays down", from: StatePulled,
			decide:    func() Decision { return OnRestore(pulledA, parked(pulledA, false)) },
			wantSteps: steps(Step{PutRecord, 0}), wantState: StateParked,
		},
		{
			name: "restore keeps the impairments", from: StatePulled,
			decide: func() Decision {
				return OnRestore(with(upAB, store.Settings{Pulled: true, Toward: [2]*linkparam.Impairment{slow, nil}}), parked(upAB, true))
			},
			wantSteps: steps(Step{Restore, 0}, Step{Restore, 1}, Step{PutRecord, 0}), wantState: StateImpaired,
		},
		{
			name: "impair toward one pod", from: StateUp,
			decide: func() Decision {
				return OnImpair(upAB, [2]*linkparam.Impairment{nil, slow}, parked(upAB, true))
			},
			wantSteps: steps(Step{Impair, 1}, Step{PutRecord, 0}), wantState: StateImpaired,
		},
		{
			name: "impair both ways, one unchanged", from: StateImpaired,
			decide: func() Decision {
				return OnImpair(towardB, [2]*linkparam.Impairment{later, {Rate: 10e6}}, parked(towardB, true))
			},
			wantSteps: steps(Step{Impair, 0}, Step{PutRecord, 0}), wantState: StateImpaired,
		},
		{
			name: "impair a parked link: recorded, applied on the end that is there", from: StateParked,
			decide: func() Decision {
				return OnImpair(parkedA, [2]*linkparam.Impairment{slow, later}, parked(parkedA, false))
			},
			wantSteps: steps(Step{Impair, 0}, Step{PutRecord, 0}), wantState: StateParked,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if n.Toward(1) != later {
					t.Errorf("the absent end's impairment is not recorded: %+v", n.Settings)
				}
			},
		},
		{
			name: "reset", from: StateImpaired,
			decide:    func() Decision { return OnReset(towardB, parked(towardB, true)) },
			wantSteps: steps(Step{Impair, 1}, Step{PutRecord, 0}), wantState: StateUp,
			checkAfter: func(t *testing.T, n *store.LinkRecord) {
				if n.Settings != nil {
					t.Errorf("settings left: %+v", n.Settings)
				}
			},
		},
		{
			name: "reset keeps a pull", from: StatePulled,
			decide: func() Decision {
				return OnReset(with(upAB, store.Settings{Pulled: true, Toward: [2]*linkparam.Impairment{slow, nil}}), parked(upAB, true))
			},
			wantSteps: steps(Step{Impair, 0}, Step{PutRecord, 0}), wantState: StatePulled,
		},
		{
			name: "ADD of a pulled link's peer: stitched, not plugged", from: StatePulled,
			decide:    func() Decision { return OnAdd(pulledA, 1, keyB, parked(pulledA, false)) },
			wantSteps: steps(Step{MakeEnd, 1}, Step{Stitch, 1}), wantState: StatePulled,
		},
		{
			name: "ADD of a new incarnation of a pulled link's end", from: StatePulled,
			decide:    func() Decision { return OnAdd(pulledAB, 0, keyA, parked(pulledAB, true)) },
			wantSteps: steps(Step{UnplugStale, 0}, Step{MakeEnd, 0}, Step{Stitch, 0}), wantState: StatePulled,
		},
		{
			name: "ADD of an impaired link's end: impaired before it is plugged", from: StateParked,
			decide: func() Decision {
				return OnAdd(with(parkedA, store.Settings{Toward: [2]*linkparam.Impairment{nil, slow}}), 1, keyB, parked(parkedA, false))
			},
			wantSteps: steps(Step{MakeEnd, 1}, Step{Impair, 1}, Step{Stitch, 1}, Step{Plug, 1}, Step{Plug, 0}), wantState: StateImpaired,
		},
		{
			name: "ADD toward the other end's impairment: nothing to give the new end", from: StateParked,
			decide: func() Decision {
				return OnAdd(with(parkedA, store.Settings{Toward: [2]*linkparam.Impairment{slow, nil}}), 1, keyB, parked(parkedA, false))
			},
			wantSteps: steps(Step{MakeEnd, 1}, Step{Stitch, 1}, Step{Plug, 1}, Step{Plug, 0}), wantState: StateImpaired,
		},
		{
			name: "CHECK of a pulled link", from: StatePulled,
			decide:    func() Decision { return OnCheck(pulledAB, 0, parked(pulledAB, true)) },
			wantSteps: steps(Step{VerifyJoined, 0}), wantState: StatePulled,
		},
		{
			name: "CHECK of the end an impairment leaves from", from: StateImpaired,
			decide:    func() Decision { return OnCheck(towardB, 1, parked(towardB, true)) },
			wantSteps: steps(Step{VerifyJoined, 1}, Step{VerifyImpairment, 1}), wantState: StateImpaired,
		},
		{
			name: "CHECK of the other end", from: StateImpaired,
			decide:    func() Decision { return OnCheck(towardB, 0, parked(towardB, true)) },
			wantSteps: steps(Step{VerifyJoined, 0}), wantState: StateImpaired,
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

// TestPeerRegisteredTakesTheClusterSettings: the agent gives a remote
// link's end the settings the cluster holds before plugging it, never
// plugs a pulled link, and mirrors the settings into the record.
func TestPeerRegisteredTakesTheClusterSettings(t *testing.T) {
	pending := record(false, end("a", true, &keyA, 10), end("b", false, nil, 0))
	obs := parked(pending, false)
	for _, tc := range []struct {
		name      string
		rec       *store.LinkRecord
		want      *store.Settings
		wantSteps []Step
		wantState State
	}{
		{"no settings", pending, nil, steps(Step{Tunnel, 0}, Step{Plug, 0}), StateRemote},
		{"pulled", pending, &store.Settings{Pulled: true},
			steps(Step{Tunnel, 0}, Step{Pull, 0}, Step{PutRecord, 0}), StatePulled},
		{"pulled already recorded", with(pending, store.Settings{Pulled: true}), &store.Settings{Pulled: true},
			steps(Step{Tunnel, 0}, Step{Pull, 0}), StatePulled},
		{"impaired toward this end: before the plug", pending, &store.Settings{Toward: [2]*linkparam.Impairment{slow, nil}},
			steps(Step{Impair, 0}, Step{Tunnel, 0}, Step{Plug, 0}, Step{PutRecord, 0}), StateRemote},
		{"impaired toward the other end only: not this node's", pending, &store.Settings{Toward: [2]*linkparam.Impairment{nil, slow}},
			steps(Step{Tunnel, 0}, Step{Plug, 0}, Step{PutRecord, 0}), StateRemote},
		{"impairment unchanged", with(pending, store.Settings{Toward: [2]*linkparam.Impairment{slow, nil}}),
			&store.Settings{Toward: [2]*linkparam.Impairment{{Rate: 10e6}, nil}}, steps(Step{Tunnel, 0}, Step{Plug, 0}), StateRemote},
		{"impairment and pull cleared", with(pending, store.Settings{Pulled: true, Toward: [2]*linkparam.Impairment{slow, later}}), nil,
			steps(Step{Impair, 0}, Step{Tunnel, 0}, Step{Plug, 0}, Step{PutRecord, 0}), StateRemote},
	} {
		d := OnPeerRegistered(tc.rec, 0, tc.want, obs)
		if !slices.Equal(d.Steps, tc.wantSteps) || d.State != tc.wantState {
			t.Errorf("%s: steps %v state %q, want %v %q", tc.name, d.Steps, d.State, tc.wantSteps, tc.wantState)
		}
		if tc.want != nil && d.Next.Pulled() != tc.want.Pulled {
			t.Errorf("%s: record pulled %v", tc.name, d.Next.Pulled())
		}
		if tc.want.IsZero() != (d.Next.Settings == nil) {
			t.Errorf("%s: record settings %+v, want %+v", tc.name, d.Next.Settings, tc.want)
		}
	}
	// The decision's record is its own: the caller's want is not shared.
	want := &store.Settings{Pulled: true}
	d := OnPeerRegistered(pending, 0, want, obs)
	want.Pulled = false
	if !d.Next.Pulled() {
		t.Error("the decision's record shares the caller's settings")
	}
}
