package labop

import (
	"context"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// CableDecider is the decision of pulling a link's cable (pull: both pods
// lose carrier) or plugging it back.
func CableDecider(pull bool) Decider {
	return func(rec *store.LinkRecord, _ int, obs podlink.Observation) (podlink.Decision, error) {
		if pull {
			return podlink.OnPull(rec, obs), nil
		}
		return podlink.OnRestore(rec, obs), nil
	}
}

// Cable pulls (pull) or plugs back the cable of the pod link with the end
// named NAMESPACE/POD:IFNAME, on the node of the local store in dir, with
// ratchetd's socket for a cross-node link: what `ratchetctl link down|up`
// and ratchetd's topology page do. IsBadArgument tells the caller's
// mistakes from the node's failures.
func Cable(dir, socket, end string, pull bool) error {
	target, err := ParseEnd(end)
	if err != nil {
		return err
	}
	s, err := Open(context.Background(), dir, socket)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Adjust(target, CableDecider(pull))
}

// ImpairChange is a change of a link's run-time impairments: each field
// of Values (linkparam.ImpairmentFields) takes its value, as
// linkparam's Impairment.Set parses it, in the direction toward the
// named end's pod (To) and away from it (From); the other fields keep
// theirs.
type ImpairChange struct {
	To, From bool
	Values   map[string]string
}

// Decider returns the change's decision. A value or a result that
// linkparam refuses (a reorder needs a delay, which may be set already)
// is linkparam's error, naming the field.
func (c ImpairChange) Decider() Decider {
	return func(rec *store.LinkRecord, mine int, obs podlink.Observation) (podlink.Decision, error) {
		toward, err := c.apply(rec, mine)
		if err != nil {
			return podlink.Decision{}, err
		}
		return podlink.OnImpair(rec, toward, obs), nil
	}
}

// apply returns rec's impairments with the change made, relative to end
// mine, each checked as a whole.
func (c ImpairChange) apply(rec *store.LinkRecord, mine int) ([2]*linkparam.Impairment, error) {
	var toward [2]*linkparam.Impairment
	for i := range toward {
		cur := linkparam.Impairment{}
		if t := rec.Toward(i); t != nil {
			cur = *t
		}
		if i == mine && c.To || i != mine && c.From {
			for name, v := range c.Values {
				if err := cur.Set(name, v); err != nil {
					return toward, err
				}
			}
			if err := cur.Check(); err != nil {
				return toward, err
			}
		}
		toward[i] = &cur
	}
	return toward, nil
}

// Reset removes the run-time impairments and the mirror of the link with
// end e.
func (s *Session) Reset(e End) error {
	var reset *store.LinkRecord
	err := s.Adjust(e, func(rec *store.LinkRecord, _ int, obs podlink.Observation) (podlink.Decision, error) {
		reset = rec
		return podlink.OnReset(rec, obs), nil
	})
	if err != nil || reset == nil || reset.MirrorTo() == nil {
		return err
	}
	// The mirror went with the impairments: the collector's list of
	// links mirrored to it forgets this one.
	return podlink.NoteMirror(context.Background(), s.st, reset.ID, reset.MirrorTo(), nil)
}
