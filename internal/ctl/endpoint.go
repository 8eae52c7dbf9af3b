package ctl

import (
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// endpointFlags are koko's endpoint flags, by the netns kind they name.
var endpointFlags = map[string]string{"n": "name", "a": "path", "p": "pid", "c": "current", "d": "docker"}

// endpointSpec is an endpoint as written on the command line.
type endpointSpec struct {
	flag   string // the flag letter, for messages
	kind   string // key of endpointFlags' values
	ref    string // netns name, path, pid or container
	ifname string
	addrs  []*net.IPNet
}

func (e endpointSpec) String() string { return "-" + e.flag + " " + e.ref + "," + e.ifname }

// parseEndpoint parses "NETNS,IFNAME[,CIDR...]" (or "IFNAME[,CIDR...]" for -c).
func parseEndpoint(flagName, value string) (endpointSpec, error) {
	e := endpointSpec{flag: flagName, kind: endpointFlags[flagName]}
	parts := strings.Split(value, ",")
	if e.kind != "current" {
		if len(parts) < 2 || parts[0] == "" {
			return e, badArg("want NETNS,IFNAME[,CIDR...]")
		}
		e.ref, parts = parts[0], parts[1:]
	}
	e.ifname = parts[0]
	if err := netconf.CheckIfName(e.ifname); err != nil {
		return e, badArg("%v", err)
	}
	for _, c := range parts[1:] {
		ip, ipn, err := net.ParseCIDR(c)
		if err != nil {
			return e, badArg("%q is not a CIDR (address/prefix)", c)
		}
		ipn.IP = ip
		e.addrs = append(e.addrs, ipn)
	}
	return e, nil
}

// open opens the endpoint's namespace; the caller closes it.
func (e endpointSpec) open() (ns.NetNS, error) {
	if e.kind == "docker" {
		pid, err := dockerPid(e.ref)
		if err != nil {
			return nil, fmt.Errorf("-d %s: %w", e.ref, err)
		}
		return link.OpenNetnsBy("pid", fmt.Sprint(pid))
	}
	n, err := link.OpenNetnsBy(e.kind, e.ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e, err)
	}
	return n, nil
}

// endpoint returns the link endpoint in the opened namespace.
func (e endpointSpec) endpoint(n ns.NetNS, mtu int) link.Endpoint {
	return link.Endpoint{NS: n, Name: e.ifname, Addrs: e.addrs, MTU: mtu}
}
