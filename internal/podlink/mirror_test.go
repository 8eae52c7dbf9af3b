package podlink

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/store"
)

var collectorC = &store.MirrorTarget{Pod: "lab/c", IfName: "eth1"}

// withCollector is obs with the collector's parked netdev at index.
func withCollector(obs Observation, index int) Observation {
	obs.Collector = index
	return obs
}

func TestMirrorDecisions(t *testing.T) {
	upAB := record(true, end("a", true, &keyA, 10), end("b", true, &keyB, 11))
	parkedA := record(true, end("a", true, &keyA, 10), end("b", true, nil, 0))
	mirrored := with(upAB, store.Settings{Mirror: collectorC})
	mirroredImpaired := with(upAB, store.Settings{Mirror: collectorC, Toward: [2]*linkparam.Impairment{slow, nil}})
	mirroredPulled := with(upAB, store.Settings{Mirror: collectorC, Pulled: true})
	pendingMirrored := with(record(false, end("a", true, &keyA, 10), end("b", false, nil, 0)), store.Settings{Mirror: collectorC})
	for _, tc := range []struct {
		name          string
		d             Decision
		wantSteps     []Step
		wantState     State
		wantCollector int
		wantMirror    *store.MirrorTarget
		wantSettings  bool
	}{
		{
			name: "mirror an up link, collector here", d: OnMirror(upAB, collectorC, withCollector(parked(upAB, true), 20)),
			wantSteps: steps(Step{Mirror, 0}, Step{Mirror, 1}, Step{PutRecord, 0}), wantState: StateUp,
			wantCollector: 20, wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "mirror, collector not here: recorded, no copies", d: OnMirror(upAB, collectorC, parked(upAB, true)),
			wantSteps: steps(Step{Mirror, 0}, Step{Mirror, 1}, Step{PutRecord, 0}), wantState: StateUp,
			wantCollector: 0, wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "mirror a parked link: its end alone", d: OnMirror(parkedA, collectorC, withCollector(parked(parkedA, false), 20)),
			wantSteps: steps(Step{Mirror, 0}, Step{PutRecord, 0}), wantState: StateParked,
			wantCollector: 20, wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "unmirror: settings go", d: OnMirror(mirrored, nil, withCollector(parked(mirrored, true), 20)),
			wantSteps: steps(Step{Mirror, 0}, Step{Mirror, 1}, Step{PutRecord, 0}), wantState: StateUp,
		},
		{
			name: "unmirror a pulled link: still pulled", d: OnMirror(mirroredPulled, nil, parked(mirroredPulled, true)),
			wantSteps: steps(Step{Mirror, 0}, Step{Mirror, 1}, Step{PutRecord, 0}), wantState: StatePulled, wantSettings: true,
		},
		{
			name: "reset clears impairment and mirror", d: OnReset(mirroredImpaired, withCollector(parked(mirroredImpaired, true), 20)),
			wantSteps: steps(Step{Impair, 0}, Step{Mirror, 0}, Step{Mirror, 1}, Step{PutRecord, 0}), wantState: StateUp,
		},
		{
			name: "reset of a mirrored link alone", d: OnReset(mirrored, withCollector(parked(mirrored, true), 20)),
			wantSteps: steps(Step{Mirror, 0}, Step{Mirror, 1}, Step{PutRecord, 0}), wantState: StateUp,
		},
		{
			name: "re-ADD of b: mirrored before stitched", d: OnAdd(with(parkedA, store.Settings{Mirror: collectorC}), 1, keyB, withCollector(parked(parkedA, false), 20)),
			wantSteps: steps(Step{MakeEnd, 1}, Step{Mirror, 1}, Step{Stitch, 1}, Step{Plug, 1}, Step{Plug, 0}), wantState: StateUp,
			wantCollector: 20, wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "re-ADD of b, collector not here", d: OnAdd(with(parkedA, store.Settings{Mirror: collectorC}), 1, keyB, parked(parkedA, false)),
			wantSteps: steps(Step{MakeEnd, 1}, Step{Stitch, 1}, Step{Plug, 1}, Step{Plug, 0}), wantState: StateUp,
			wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "CHECK verifies the mirror", d: OnCheck(mirrored, 0, withCollector(parked(mirrored, true), 20)),
			wantSteps: steps(Step{VerifyJoined, 0}, Step{VerifyMirror, 0}), wantState: StateUp,
			wantCollector: 20, wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "CHECK, collector gone: nothing to verify", d: OnCheck(mirrored, 0, parked(mirrored, true)),
			wantSteps: steps(Step{VerifyJoined, 0}), wantState: StateUp, wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "collector back", d: OnCollectorBack(mirrored, withCollector(parked(mirrored, true), 30)),
			wantSteps: steps(Step{Mirror, 0}, Step{Mirror, 1}), wantState: StateUp,
			wantCollector: 30, wantMirror: collectorC, wantSettings: true,
		},
		{
			name: "collector back, link unmirrored since", d: OnCollectorBack(upAB, withCollector(parked(upAB, true), 30)),
			wantState: StateUp,
		},
		{
			name: "peer registered elsewhere: the mirror stays", d: OnPeerRegistered(pendingMirrored, 0, nil, parked(pendingMirrored, false)),
			wantSteps: steps(Step{Tunnel, 0}, Step{Plug, 0}), wantState: StateRemote, wantMirror: collectorC, wantSettings: true,
		},
	} {
		d := tc.d
		if !slices.Equal(d.Steps, tc.wantSteps) {
			t.Errorf("%s: steps %v, want %v", tc.name, d.Steps, tc.wantSteps)
		}
		if d.State != tc.wantState {
			t.Errorf("%s: state %q, want %q", tc.name, d.State, tc.wantState)
		}
		if d.Collector != tc.wantCollector {
			t.Errorf("%s: collector %d, want %d", tc.name, d.Collector, tc.wantCollector)
		}
		if got := d.Next.MirrorTo(); !sameMirror(got, tc.wantMirror) {
			t.Errorf("%s: next mirror %v, want %v", tc.name, got, tc.wantMirror)
		}
		if (d.Next.Settings != nil) != tc.wantSettings {
			t.Errorf("%s: next settings %+v, want some: %v", tc.name, d.Next.Settings, tc.wantSettings)
		}
	}
	if mirrored.MirrorTo() != collectorC || upAB.Settings != nil {
		t.Error("a decision changed its input record")
	}
}

// fakeMeta is a MetaStore in memory: NoteMirror's bookkeeping is pure.
type fakeMeta map[string]string

func (m fakeMeta) Meta(_ context.Context, k string) (string, error) { return m[k], nil }
func (m fakeMeta) PutMeta(_ context.Context, k, v string) error {
	if v == "" {
		delete(m, k) // as the store does
	} else {
		m[k] = v
	}
	return nil
}

func TestNoteMirror(t *testing.T) {
	ctx := context.Background()
	m := fakeMeta{}
	other := &store.MirrorTarget{Pod: "lab/d", IfName: "eth1"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(NoteMirror(ctx, m, "l1", nil, collectorC))
	must(NoteMirror(ctx, m, "l2", nil, collectorC))
	must(NoteMirror(ctx, m, "l1", nil, collectorC)) // again: listed once
	ids, _ := MirroredTo(ctx, m, collectorC.Pod, collectorC.IfName)
	if !slices.Equal(ids, []string{"l2", "l1"}) {
		t.Fatalf("mirrored to c: %q", ids)
	}
	must(NoteMirror(ctx, m, "l1", collectorC, other))
	ids, _ = MirroredTo(ctx, m, collectorC.Pod, collectorC.IfName)
	idsD, _ := MirroredTo(ctx, m, other.Pod, other.IfName)
	if !slices.Equal(ids, []string{"l2"}) || !slices.Equal(idsD, []string{"l1"}) {
		t.Fatalf("after moving l1: c %q, d %q", ids, idsD)
	}
	must(NoteMirror(ctx, m, "l2", collectorC, nil))
	if ids, _ = MirroredTo(ctx, m, collectorC.Pod, collectorC.IfName); len(ids) != 0 {
		t.Fatalf("after unmirror: %q", ids)
	}
	// The emptied list is deleted, not kept as "": d's alone is left.
	if _, ok := m[store.MirrorsToKey(*collectorC)]; ok || len(m) != 1 {
		t.Fatalf("meta after the last unmirror from c: %q", m)
	}
}

// TestRepointMirrorsPrunes: the collector's ADD drops from its list the
// ids of links that are gone, no longer mirrored, or mirrored elsewhere,
// and deletes the list once nothing is left; none of them is applied, so
// the executor's kernel side is not needed.
func TestRepointMirrorsPrunes(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	other := &store.MirrorTarget{Pod: "lab/d", IfName: "eth1"}
	elsewhere := with(record(true, end("a", true, &keyA, 10), end("b", true, &keyB, 11)), store.Settings{Mirror: other})
	unmirrored := record(true, end("e", true, nil, 0), end("f", true, nil, 0))
	unmirrored.ID = "e:l-e--f:l-f"
	for _, r := range []*store.LinkRecord{elsewhere, unmirrored} {
		if err := st.PutLink(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	list := strings.Join([]string{"gone", elsewhere.ID, unmirrored.ID}, "\n")
	if err := st.PutMeta(ctx, store.MirrorsToKey(*collectorC), list); err != nil {
		t.Fatal(err)
	}
	if err := (&Executor{}).RepointMirrors(ctx, st, collectorC.Pod, collectorC.IfName, 20); err != nil {
		t.Fatal(err)
	}
	if ids, err := MirroredTo(ctx, st, collectorC.Pod, collectorC.IfName); err != nil || len(ids) != 0 {
		t.Fatalf("c's list after RepointMirrors: %q, %v; want none", ids, err)
	}
}
