package store

import (
	"encoding/json"
	"errors"
	"fmt"
)

// AddedLink is the cluster's record of a cross-node link that the node's
// administrator made on running pods (`ratchetctl link add` with the pods
// on two nodes): both ends' specs, so that the agent of the node that
// runs each pod makes that pod's end. Ends are in the order of the link
// id's ends.
type AddedLink struct {
	Ends [2]AddedEnd `json:"ends"`
	// Failed says why an agent could not make its pod's end (the name is
	// taken in the pod, ...): the `link add` that wrote the record reports
	// it and removes the record. No agent acts on a failed record.
	Failed string `json:"failed,omitempty"`
}

// AddedEnd is one end of an added link: the pod's interface and its spec
// (a netconf.LinkSpec, as an annotation's link, JSON).
type AddedEnd struct {
	Pod    string          `json:"pod"`
	IfName string          `json:"ifName"`
	Spec   json.RawMessage `json:"spec"`
}

// ErrAddedChanged says that an added link's record in the cluster changed
// (or went) since it was read.
var ErrAddedChanged = errors.New("the added link's record changed meanwhile")

// Check checks that a's ends are the ends of link id, in its order, each
// with a spec: what a reader of the cluster's record trusts no further.
func (a *AddedLink) Check(id string) error {
	podA, ifA, podB, ifB, ok := ParseLinkID(id)
	if !ok {
		return fmt.Errorf("%q is not a link id", id)
	}
	want := [2][2]string{{podA, ifA}, {podB, ifB}}
	for i, e := range a.Ends {
		if e.Pod != want[i][0] || e.IfName != want[i][1] {
			return fmt.Errorf("end %d is %s:%s, not %s:%s as the link id says", i, e.Pod, e.IfName, want[i][0], want[i][1])
		}
		if len(e.Spec) == 0 {
			return fmt.Errorf("end %s:%s has no spec", e.Pod, e.IfName)
		}
	}
	return nil
}
