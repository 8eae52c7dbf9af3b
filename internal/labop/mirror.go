package labop

import (
	"context"
	"fmt"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Mirror mirrors the link with end target to the collector to, or, with
// unmirror, stops mirroring it (to: the collector the caller expects, or
// nil): `link mirror` and `link unmirror`. A mirror copies a link whose
// two ends are on this node to a collector on this node: the copies are
// taken on the link's parked ends and leave through the collector's, in
// the node's parking namespace. A cross-node link's far direction arrives
// on its tunnel, which is the node agent's, so such a link is refused.
func (s *Session) Mirror(target End, to *End, unmirror bool) error {
	rec, _, err := s.Find(target)
	if err != nil {
		return err
	}
	obs := s.observe(rec)
	if podlink.Remote(rec, obs) {
		return fmt.Errorf("link %s is cross-node: a mirror copies only a link whose ends are both on this node", shown(rec.ID))
	}
	old := rec.MirrorTo()
	var want *store.MirrorTarget
	if unmirror {
		if to != nil && (old == nil || *old != (store.MirrorTarget{Pod: to.Pod, IfName: to.IfName})) {
			now := "not mirrored"
			if old != nil {
				now = "mirrored to " + shown(old.String())
			}
			return badArg("--to %s: link %s is %s", shown(to.String()), shown(rec.ID), now)
		}
	} else {
		if obs.Collector, err = s.collector(rec, to); err != nil {
			return err
		}
		want = &store.MirrorTarget{Pod: to.Pod, IfName: to.IfName}
	}
	d := podlink.OnMirror(rec, want, obs)
	left := old != nil && (want == nil || *old != *want)
	added := want != nil && (old == nil || *old != *want)
	// A collector's list must name every link whose record mirrors to it,
	// or the collector's restart does not repoint the link's mirror and it
	// is silently lost; an id too many costs a lookup (RepointMirrors drops
	// it). So the new collector's list names the link before the record
	// mirrors there, and the old one's forgets it only once the record no
	// longer mirrors to it.
	ctx := context.Background()
	undo := podlink.NewUndo(nil)
	ok := false
	defer func() { undo.Finish(ok) }()
	if added {
		if err := podlink.NoteMirror(ctx, s.st, rec.ID, nil, want); err != nil {
			return err
		}
		id, t := rec.ID, *want
		undo.Push(fmt.Sprintf("drop link %s from the list of links mirrored to %s", id, t), func() error {
			return podlink.NoteMirror(context.Background(), s.st, id, &t, nil)
		})
	}
	if err := s.applyLocal([]*store.LinkRecord{rec}, []podlink.Decision{d}, []int{0}); err != nil {
		return err
	}
	ok = true
	if left {
		return podlink.NoteMirror(ctx, s.st, rec.ID, old, nil)
	}
	return nil
}

// collector checks the collector the user named for the link rec, and
// returns its parked netdev's ifindex.
func (s *Session) collector(rec *store.LinkRecord, to *End) (int, error) {
	if to == nil {
		return 0, badArg("link mirror: --to: want the collector's end, NAMESPACE/POD:IFNAME")
	}
	for _, e := range rec.Ends {
		if e.Pod == to.Pod && e.IfName == to.IfName {
			return 0, badArg("--to %s: an end of the mirrored link (%s -- %s) itself", shown(to.String()), endName(rec.Ends[0]), endName(rec.Ends[1]))
		}
	}
	crec, _, err := s.Find(*to)
	if err != nil {
		return 0, fmt.Errorf("--to %s: not a pod link end ratchet made (a collector is one)", shown(to.String()))
	}
	if crec.ID == rec.ID {
		return 0, badArg("--to %s: an end of the mirrored link (%s -- %s) itself", shown(to.String()), endName(rec.Ends[0]), endName(rec.Ends[1]))
	}
	if s.x == nil {
		return 0, fmt.Errorf("--to %s: the node has no parking namespace", shown(to.String()))
	}
	w := store.MirrorTarget{Pod: to.Pod, IfName: to.IfName}
	probe := podlink.Clone(rec)
	probe.Settings = &store.Settings{Mirror: &w}
	index, err := s.x.ObserveCollector(context.Background(), s.st, &probe)
	if err != nil {
		return 0, err
	}
	if index == 0 {
		return 0, fmt.Errorf("--to %s: the collector's interface is not on this node now (its pod is gone, or on another node)", shown(to.String()))
	}
	return index, nil
}
