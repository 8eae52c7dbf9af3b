package podlink

import (
	"context"
	"slices"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// A mirrored link's record names its collector (store.Settings.Mirror) by
// pod and interface; the kernel's mirror names the collector's parked
// netdev by ifindex, which changes whenever the collector's pod restarts.
// So each side of the relation can be looked up from the other: the
// mirrored link's ADD finds the collector's end through the store's
// index of ends (ObserveCollector), and the collector's ADD finds the
// links mirrored to it in the store's meta data (MirroredTo), which
// NoteMirror keeps and the store's DeleteLink prunes. An entry there
// whose link no longer mirrors to the collector (its record changed
// without NoteMirror, as a release's may) is skipped and then dropped by
// RepointMirrors, so a stale one costs a lookup once.

// LinkFinder finds the record of the link with a pod's interface as an
// end (*store.Local does).
type LinkFinder interface {
	LinkAt(ctx context.Context, pod, ifName string) (*store.LinkRecord, error)
}

// MetaStore holds the store's meta data (*store.Local does); PutMeta of
// "" deletes a key.
type MetaStore interface {
	Meta(ctx context.Context, key string) (string, error)
	PutMeta(ctx context.Context, key, value string) error
}

// ObserveCollector returns the parked ifindex of rec's collector when rec
// is mirrored and the collector's end is here (Observation.Collector); 0
// otherwise.
func (x *Executor) ObserveCollector(ctx context.Context, st LinkFinder, rec *store.LinkRecord) (int, error) {
	t := rec.MirrorTo()
	if t == nil {
		return 0, nil
	}
	c, err := st.LinkAt(ctx, t.Pod, t.IfName)
	if err != nil || c == nil {
		return 0, err
	}
	e, _, ok := c.End(t.Pod, t.IfName)
	if !ok || !Recorded(e) || !x.park.Has(e.Parked, e.ParkedIndex) {
		return 0, nil
	}
	return e.ParkedIndex, nil
}

// MirroredTo returns the ids of the links that may mirror to pod's
// interface ifName (each caller checks the record: an entry may be stale).
func MirroredTo(ctx context.Context, st MetaStore, pod, ifName string) ([]string, error) {
	v, err := st.Meta(ctx, store.MirrorsToKey(store.MirrorTarget{Pod: pod, IfName: ifName}))
	if err != nil || v == "" {
		return nil, err
	}
	return strings.Split(v, "\n"), nil
}

// NoteMirror records that link id mirrors to to instead of from (either
// may be nil), for MirroredTo.
func NoteMirror(ctx context.Context, st MetaStore, id string, from, to *store.MirrorTarget) error {
	if sameMirror(from, to) {
		return nil
	}
	edit := func(t *store.MirrorTarget, add bool) error {
		if t == nil {
			return nil
		}
		ids, err := MirroredTo(ctx, st, t.Pod, t.IfName)
		if err != nil {
			return err
		}
		ids = slices.DeleteFunc(ids, func(s string) bool { return s == id })
		if add {
			ids = append(ids, id)
		}
		// An emptied list is written as "", which deletes its key.
		return st.PutMeta(ctx, store.MirrorsToKey(*t), strings.Join(ids, "\n"))
	}
	if err := edit(to, true); err != nil {
		return err
	}
	return edit(from, false)
}

// RepointMirrors runs at the ADD that made pod's interface ifName, whose
// parked netdev is now at index: every link mirrored to it mirrors to its
// new parked netdev (OnCollectorBack). Records do not change; the list
// drops the ids of links that are gone or no longer mirror to it.
func (x *Executor) RepointMirrors(ctx context.Context, st store.Topology, pod, ifName string, index int) error {
	ids, err := MirroredTo(ctx, st, pod, ifName)
	if err != nil {
		return err
	}
	want := store.MirrorTarget{Pod: pod, IfName: ifName}
	var stale []string
	for _, id := range ids {
		rec, err := st.Link(ctx, id)
		if err != nil {
			return err
		}
		if rec == nil || rec.MirrorTo() == nil || *rec.MirrorTo() != want {
			stale = append(stale, id)
			continue
		}
		obs := x.ObserveParked(rec)
		obs.Collector = index
		d := OnCollectorBack(rec, obs)
		if err := x.Apply(ctx, rec, &d, nil); err != nil {
			return err
		}
	}
	for _, id := range stale {
		if err := NoteMirror(ctx, st, id, &want, nil); err != nil {
			return err
		}
	}
	return nil
}
