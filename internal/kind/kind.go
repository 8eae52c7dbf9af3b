// Package kind holds the link kinds, one unit per kind: its spec in a
// network config's link (registered with netconf, which decodes and
// validates it), the link.Link it builds for ADD and CHECK, and its
// ratchetctl connect flag. A new kind is one file here and one line in
// registry.go.
//
// netconf stays free of kernel code; this package joins it to pkg/link.
// Any program that validates links must import it (registry.go registers
// the kinds with netconf at init).
package kind

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Unit is one link kind.
type Unit struct {
	// Kind is the spec part, registered with netconf.
	netconf.Kind
	// Build returns the link of a validated spec; nil for the pod kind,
	// whose links the pod-link code makes.
	Build func(spec *netconf.LinkSpec, env Env) (Built, error)
	// Flag is the kind's ratchetctl connect flag; nil if it has none.
	Flag *Flag
}

// Env is what a Build needs besides the spec.
type Env struct {
	Conf      *netconf.NetConf
	Pod, Host ns.NetNS
	Marker    link.Marker
	// Kernel is the operation's handle set for the lookups Build makes
	// (nil: one-shot handles).
	Kernel *link.Kernel
	// Field is the spec's place in the config ("links[2]").
	Field string
	// Check builds the link for CHECK: every end gets the MTU it was made
	// with, the kind's default when the spec sets none, so that Verify
	// compares it. It needs lookups (a parent's MTU) that ADD leaves to
	// the kernel.
	Check bool
}

// Built is a built link with its pod end.
type Built struct {
	link.Link
	// Pod is the pod's end of Link; Create fills it in.
	Pod *link.Endpoint
	// Opened are the namespaces Build opened for the link; the caller
	// closes them.
	Opened []ns.NetNS
}

// Flag is a kind's ratchetctl connect flag: `ratchetctl connect EP -NAME ARG`.
type Flag struct {
	// Name is the flag's letter, without the dash.
	Name string
	// Arg is the value's syntax, as the usage shows it.
	Arg string
	// Usage says what the flag makes.
	Usage string
	// Parse checks a value and returns the maker of the link with the
	// command line's endpoint, the underlay (ratchetctl's own namespace)
	// and marker. Its error names the flag and the value.
	Parse func(value string) (func(end link.Endpoint, underlay ns.NetNS, m link.Marker) link.Link, error)
}

// Endpoint turns a validated spec's parsed end into a link end in n.
func Endpoint(e netconf.End, n ns.NetNS) link.Endpoint {
	end := link.Endpoint{NS: n, Name: e.Name, Addrs: e.Addrs, MAC: e.MAC, MTU: e.MTU}
	for _, r := range e.Routes {
		end.Routes = append(end.Routes, link.Route{Dst: r.Dst, GW: r.GW})
	}
	if e.Netem != nil {
		imp := link.Netem(*e.Netem)
		end.Netem = &imp
	}
	return end
}

// podEnd is the pod's end of a static link.
func podEnd(spec *netconf.LinkSpec, env Env) link.Endpoint {
	return Endpoint(spec.Local(), env.Pod)
}

// parentMTU gives end, when its spec sets no MTU, the MTU of its parent
// device in the underlay: what the kernel gives a macvlan or vlan made
// without one. At ADD a failed lookup leaves it to Create, which reports
// the missing parent as the link failure it is; at CHECK it is the
// mismatch.
func parentMTU(end *link.Endpoint, env Env, field, parent string) error {
	if end.MTU != 0 {
		return nil
	}
	mtu, err := link.DeviceMTU(env.Kernel, env.Host, parent)
	if err != nil {
		if env.Check {
			return types.NewError(netconf.ErrCheckFailed, fmt.Sprintf("%s: %v", field, err), "")
		}
		return nil
	}
	end.MTU = mtu
	return nil
}
