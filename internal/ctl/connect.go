package ctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// ctlMarker is the alias prefix of links made by hand with ratchetctl.
const ctlMarker = "ratchet:ctl:"

// orderedEndpoints keeps endpoint flags in command-line order: the first
// endpoint is the link's A end.
type orderedEndpoints struct {
	list []endpointSpec
}

type endpointFlag struct {
	name string
	into *orderedEndpoints
}

func (f endpointFlag) String() string { return "" }
func (f endpointFlag) Set(v string) error {
	e, err := parseEndpoint(f.name, v)
	if err != nil {
		return err
	}
	f.into.list = append(f.into.list, e)
	return nil
}

func endpointFlagSet(name string) (*orderedEndpoints, *flag.FlagSet) {
	eps := &orderedEndpoints{}
	fs := newFlagSet(name)
	for letter := range endpointFlags {
		fs.Var(endpointFlag{name: letter, into: eps}, letter, "endpoint")
	}
	return eps, fs
}

func connect(args []string, stdout io.Writer) error {
	eps, fs := endpointFlagSet("connect")
	// Each kind with a connect flag (-x, -M, -V) is a unit of
	// internal/kind: its flag, syntax and link live there.
	units := kind.Flags()
	values := make([]*string, len(units))
	for i, u := range units {
		values[i] = fs.String(u.Flag.Name, "", u.Flag.Arg)
	}
	mtu := fs.Int("mtu", 0, "MTU of both ends")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *mtu != 0 {
		if err := linkparam.CheckMTU(*mtu); err != nil {
			return badArg("--mtu %d: %v", *mtu, err)
		}
	}
	var chosen []kind.Unit
	var value string
	for i, u := range units {
		if *values[i] != "" {
			chosen = append(chosen, u)
			value = *values[i]
		}
	}
	switch {
	case len(chosen) > 1:
		return badArg("%s exclude each other", flagList("and"))
	case len(chosen) == 0 && len(eps.list) != 2:
		return badArg("a veth link needs two endpoints, got %d", len(eps.list))
	case len(chosen) == 1 && len(eps.list) != 1:
		return badArg("%s takes one endpoint, got %d", flagList("or"), len(eps.list))
	}

	var build func(namespaces []ns.NetNS, underlay ns.NetNS) (link.Link, error)
	if len(chosen) == 1 {
		newLink, err := chosen[0].Flag.Parse(value)
		if err != nil {
			return badArg("%v", err)
		}
		build = func(n []ns.NetNS, u ns.NetNS) (link.Link, error) {
			e := eps.list[0]
			return newLink(e.endpoint(n[0], *mtu), u, link.Marker{Alias: ctlMarker + e.ifname}), nil
		}
	} else {
		build = func(n []ns.NetNS, _ ns.NetNS) (link.Link, error) {
			a, b := eps.list[0], eps.list[1]
			return &link.Veth{A: a.endpoint(n[0], *mtu), B: b.endpoint(n[1], *mtu),
				Marker: link.Marker{Alias: ctlMarker + a.ifname + "-" + b.ifname}}, nil
		}
	}

	var namespaces []ns.NetNS
	defer func() {
		for _, n := range namespaces {
			n.Close()
		}
	}()
	for _, e := range eps.list {
		n, err := e.open()
		if err != nil {
			return err
		}
		namespaces = append(namespaces, n)
	}
	underlay, err := ns.GetCurrentNS()
	if err != nil {
		return err
	}
	defer underlay.Close()
	l, err := build(namespaces, underlay)
	if err != nil {
		return err
	}
	if err := l.Create(context.Background(), nil); err != nil {
		return err
	}
	ends := make([]string, len(eps.list))
	for i, e := range eps.list {
		ends[i] = e.String()
	}
	fmt.Fprintf(stdout, "connected %s (%s)\n", strings.Join(ends, " <-> "), l.Kind())
	return nil
}

// flagList names the kinds' connect flags: "-x, -M and -V".
func flagList(conj string) string {
	var names []string
	for _, u := range kind.Flags() {
		names = append(names, "-"+u.Flag.Name)
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " " + conj + " " + names[len(names)-1]
}

// connectUsage is the usage of connect with each kind's flag.
func connectUsage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-47s  %s\n", "ratchetctl connect EP EP [--mtu N]", "a veth pair between two endpoints")
	for _, u := range kind.Flags() {
		fmt.Fprintf(&b, "  %-47s  %s\n", "ratchetctl connect EP -"+u.Flag.Name+" "+u.Flag.Arg, u.Flag.Usage)
	}
	return b.String()
}

func disconnect(args []string, stdout io.Writer) error {
	eps, fs := endpointFlagSet("disconnect")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(eps.list) != 1 {
		return badArg("disconnect takes one endpoint, got %d", len(eps.list))
	}
	e := eps.list[0]
	n, err := e.open()
	if err != nil {
		return err
	}
	defer n.Close()
	removed, err := link.RemoveMarked(nil, n, e.ifname, "ratchet:")
	if err != nil {
		return fmt.Errorf("%s: %w", e, err)
	}
	if removed {
		fmt.Fprintf(stdout, "disconnected %s\n", e)
	} else {
		fmt.Fprintf(stdout, "%s: already gone\n", e)
	}
	return nil
}
