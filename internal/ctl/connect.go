package ctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

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
	vxlan := fs.String("x", "", "PARENT,REMOTE,VNI[,port=N]")
	macvlan := fs.String("M", "", "PARENT,MODE")
	vlan := fs.String("V", "", "PARENT,VLANID")
	mtu := fs.Int("mtu", 0, "MTU of both ends")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *mtu != 0 && (*mtu < 68 || *mtu > 65535) {
		return badArg("--mtu %d: must be 68..65535", *mtu)
	}
	kinds := 0
	for _, s := range []string{*vxlan, *macvlan, *vlan} {
		if s != "" {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return badArg("-x, -M and -V exclude each other")
	case kinds == 0 && len(eps.list) != 2:
		return badArg("a veth link needs two endpoints, got %d", len(eps.list))
	case kinds == 1 && len(eps.list) != 1:
		return badArg("-x, -M or -V takes one endpoint, got %d", len(eps.list))
	}

	var build func(namespaces []ns.NetNS, underlay ns.NetNS) (link.Link, error)
	switch {
	case *vxlan != "":
		parent, remote, vni, port, err := parseVxlanFlag(*vxlan)
		if err != nil {
			return err
		}
		build = func(n []ns.NetNS, u ns.NetNS) (link.Link, error) {
			return &link.Vxlan{End: eps.list[0].endpoint(n[0], *mtu), Underlay: u, Dev: parent, Remote: remote, VNI: vni, Port: port,
				Marker: link.Marker{Alias: ctlMarker + eps.list[0].ifname}}, nil
		}
	case *macvlan != "":
		parent, mode, ok := strings.Cut(*macvlan, ",")
		if _, known := link.MacvlanModes[mode]; !ok || parent == "" || !known {
			return badArg("-M %q: want PARENT,MODE with MODE bridge, private, vepa or passthru", *macvlan)
		}
		build = func(n []ns.NetNS, u ns.NetNS) (link.Link, error) {
			return &link.Macvlan{End: eps.list[0].endpoint(n[0], *mtu), Underlay: u, Master: parent, Mode: mode,
				Marker: link.Marker{Alias: ctlMarker + eps.list[0].ifname}}, nil
		}
	case *vlan != "":
		parent, idText, ok := strings.Cut(*vlan, ",")
		id, err := strconv.Atoi(idText)
		if !ok || parent == "" || err != nil || id < 1 || id > 4094 {
			return badArg("-V %q: want PARENT,VLANID with VLANID 1..4094", *vlan)
		}
		build = func(n []ns.NetNS, u ns.NetNS) (link.Link, error) {
			return &link.Vlan{End: eps.list[0].endpoint(n[0], *mtu), Underlay: u, Parent: parent, ID: id,
				Marker: link.Marker{Alias: ctlMarker + eps.list[0].ifname}}, nil
		}
	default:
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

func parseVxlanFlag(v string) (parent string, remote net.IP, vni, port int, err error) {
	parts := strings.Split(v, ",")
	bad := badArg("-x %q: want PARENT,REMOTE,VNI[,port=N]", v)
	if len(parts) < 3 || len(parts) > 4 || parts[0] == "" {
		return "", nil, 0, 0, bad
	}
	parent = parts[0]
	if remote = net.ParseIP(parts[1]); remote == nil {
		return "", nil, 0, 0, badArg("-x %q: remote %q is not an IP address", v, parts[1])
	}
	if vni, err = strconv.Atoi(parts[2]); err != nil || vni < 1 || vni > 1<<24-1 {
		return "", nil, 0, 0, badArg("-x %q: VNI %q must be 1..16777215", v, parts[2])
	}
	if len(parts) == 4 {
		p, ok := strings.CutPrefix(parts[3], "port=")
		if port, err = strconv.Atoi(p); !ok || err != nil || port < 1 || port > 65535 {
			return "", nil, 0, 0, badArg("-x %q: %q must be port=1..65535", v, parts[3])
		}
	}
	return parent, remote, vni, port, nil
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
