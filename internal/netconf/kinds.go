package netconf

import (
	"strings"
	"sync"
)

// Kind is what netconf knows of one peer kind of a link: where its spec
// sits in a LinkSpec and how it is validated. The kind units
// (internal/kind) register every kind; netconf itself links no kernel
// code. A spec naming a kind that is not registered is refused, so a
// program that validates links must import internal/kind.
type Kind struct {
	// Name is what LinkSpec.Kind returns and, for a kind with a
	// sub-object of its own, that sub-object's JSON key.
	Name string
	// InPeer, set for the kinds of the peer object (peer.pod,
	// peer.netns), says whether a peer object selects this kind. Such
	// kinds have no sub-object of their own.
	InPeer func(*Peer) bool
	// New returns a pointer to an empty sub-object to decode the JSON
	// under Name into; nil for the peer kinds.
	New func() any
	// HostResource marks a kind that names node resources: pod
	// annotations may not use it.
	HostResource bool
	// Validate checks the kind's part of l, whose generic part is valid;
	// field is the spec's place ("links[2]"). Errors come from Invalid.
	Validate func(l *LinkSpec, field string) error

	quoted []byte // Name as a JSON string
}

// Field is the kind's place in a LinkSpec, as messages name it.
func (k Kind) Field() string {
	if k.InPeer != nil {
		return "peer." + k.Name
	}
	return k.Name
}

var registry struct {
	sync.RWMutex
	kinds []Kind
}

// RegisterKind adds k to the kinds LinkSpec decodes and validates. The
// first registration of a name wins; a later one is ignored (the kind
// units' registry test insists names are unique).
func RegisterKind(k Kind) {
	registry.Lock()
	defer registry.Unlock()
	for _, have := range registry.kinds {
		if have.Name == k.Name {
			return
		}
	}
	k.quoted = []byte(`"` + k.Name + `"`)
	registry.kinds = append(registry.kinds, k)
}

func registeredKinds() []Kind {
	registry.RLock()
	defer registry.RUnlock()
	return registry.kinds
}

func lookupKind(name string) (Kind, bool) {
	for _, k := range registeredKinds() {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// kindFields lists the registered kinds as a spec names them.
func kindFields() string {
	var names []string
	for _, k := range registeredKinds() {
		names = append(names, k.Field())
	}
	if len(names) == 0 {
		return "(no link kinds are registered)"
	}
	return strings.Join(names, ", ")
}
