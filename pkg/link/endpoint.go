package link

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Endpoint is one end of a link: an interface to create in a network
// namespace, with its layer-3 configuration.
type Endpoint struct {
	// NS is the namespace the interface lives in. The caller owns it.
	NS ns.NetNS
	// Name is the interface name inside NS.
	Name string
	// Addrs are assigned to the interface; IPv6 addresses skip duplicate
	// address detection.
	Addrs []*net.IPNet
	// MAC is the hardware address; nil lets the kernel pick one.
	MAC net.HardwareAddr
	// MTU is the interface MTU; 0 means the kind's default.
	MTU int
	// Routes are installed through the interface.
	Routes []Route
	// Netem, when set, impairs traffic leaving the interface.
	Netem *Netem
	// Index is the interface's ifindex, filled in by Create.
	Index int
	// Down leaves the interface administratively down. A veth end whose
	// peer is down has no carrier: an unplugged cable.
	Down bool
}

// Route is a route through an endpoint's interface.
type Route struct {
	Dst *net.IPNet
	GW  net.IP
}

func (e *Endpoint) String() string {
	if e.NS == nil {
		return e.Name
	}
	return e.NS.Path() + ":" + e.Name
}

// NetnsPath returns the path of a network namespace given the way koko and
// ratchetctl name it: an `ip netns` name, a path, or a process id.
func NetnsPath(kind, ref string) (string, error) {
	switch kind {
	case "name":
		if ref == "" || ref != filepath.Base(ref) || ref == "." || ref == ".." {
			return "", fmt.Errorf("invalid netns name %q", ref)
		}
		return filepath.Join("/var/run/netns", ref), nil
	case "path":
		if !filepath.IsAbs(ref) {
			return "", fmt.Errorf("netns path %q is not absolute", ref)
		}
		return ref, nil
	case "pid":
		pid, err := strconv.Atoi(ref)
		if err != nil || pid <= 0 {
			return "", fmt.Errorf("invalid pid %q", ref)
		}
		return fmt.Sprintf("/proc/%d/ns/net", pid), nil
	}
	return "", fmt.Errorf("unknown netns kind %q", kind)
}

// OpenNetnsBy opens a network namespace named the way NetnsPath takes it,
// or the calling thread's own for kind "current". The caller closes it.
func OpenNetnsBy(kind, ref string) (ns.NetNS, error) {
	if kind == "current" {
		return ns.GetCurrentNS()
	}
	path, err := NetnsPath(kind, ref)
	if err != nil {
		return nil, err
	}
	return ns.GetNS(path)
}

// OpenNetns opens a network namespace by path or, for a bare name, as an
// `ip netns` name. The caller closes it.
func OpenNetns(ref string) (ns.NetNS, error) {
	path := ref
	if !filepath.IsAbs(ref) {
		var err error
		if path, err = NetnsPath("name", ref); err != nil {
			return nil, err
		}
	}
	return ns.GetNS(path)
}
