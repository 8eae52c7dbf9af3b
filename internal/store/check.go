package store

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// The registry is shared by every node of the cluster, and a node's
// credentials may be stolen: what one reads from it is input from another
// node, checked like any other input before it drives the kernel. A record
// that fails these checks is skipped (and logged) by the registry that
// read it, so that one bad record never stops the agents' reconcile.

// ErrBadRecord says that a registry record is malformed or breaks the
// cluster's rules (a VTEP outside the underlay, a node record under
// another node's name).
var ErrBadRecord = errors.New("bad registry record")

// maxPodName bounds a pod name: a namespace (63), "/" and a Kubernetes
// object name (253).
const maxPodName = 63 + 1 + 253

// maxNodeName bounds a node name, as Kubernetes bounds object names.
const maxNodeName = 253

// CheckPodName accepts the pod names ratchet writes: "namespace/name" for
// a Kubernetes pod, or a container id alone; each part starts with a
// letter or digit and holds only letters, digits, '_', '.' and '-'.
func CheckPodName(pod string) error {
	if pod == "" || len(pod) > maxPodName {
		return fmt.Errorf("pod name %q: want 1..%d bytes", pod, maxPodName)
	}
	parts := strings.Split(pod, "/")
	if len(parts) > 2 {
		return fmt.Errorf("pod name %q: more than one '/'", pod)
	}
	for _, p := range parts {
		if !isName(p, "_.-") {
			return fmt.Errorf("pod name %q: want namespace/name or a container id", pod)
		}
	}
	return nil
}

// CheckNodeName accepts a node name: 1..253 bytes, starting with a letter
// or digit, of letters, digits, '_', '.', '-' and '/'.
func CheckNodeName(node string) error {
	if len(node) > maxNodeName || !isName(node, "_.-/") {
		return fmt.Errorf("node name %q: want 1..%d letters, digits, '_', '.', '-' or '/', starting with a letter or digit", node, maxNodeName)
	}
	return nil
}

// CheckIfName applies the kernel's rules for interface names: 1 to 15
// bytes, no '/', ':', NUL or white space, and not "." or "..".
func CheckIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return fmt.Errorf("interface name %q: want 1..15 bytes, not . or ..", name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("interface name %q contains %q", name, c)
		}
	}
	return nil
}

// isName reports whether s is non-empty, starts with an ASCII letter or
// digit and holds only those and the bytes of extra.
func isName(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || strings.IndexByte(extra, c) < 0) {
			return false
		}
	}
	return s != ""
}

// Check reports what is wrong with an end record, wrapped in ErrBadRecord.
func (e *EndRecord) Check() error {
	var err error
	switch {
	case e == nil:
		err = errors.New("no end record")
	case CheckPodName(e.Pod) != nil:
		err = CheckPodName(e.Pod)
	case CheckIfName(e.IfName) != nil:
		err = CheckIfName(e.IfName)
	case CheckPodName(e.PeerPod) != nil:
		err = fmt.Errorf("peer: %w", CheckPodName(e.PeerPod))
	case CheckIfName(e.PeerIfName) != nil:
		err = fmt.Errorf("peer: %w", CheckIfName(e.PeerIfName))
	case CheckNodeName(e.Node) != nil:
		err = CheckNodeName(e.Node)
	}
	if err != nil {
		return fmt.Errorf("%w: end: %v", ErrBadRecord, err)
	}
	return nil
}

// Check reports what is wrong with a node record, wrapped in ErrBadRecord:
// a bad name, a port outside 1..65535 (0: the cluster's port), or a VTEP
// that is not a unicast address, or outside every prefix of underlay when
// underlay is not empty. The VTEP is where every tunnel to the node goes:
// an address outside the underlay would send pod traffic elsewhere.
func (n *NodeRecord) Check(underlay []netip.Prefix) error {
	if n == nil {
		return fmt.Errorf("%w: no node record", ErrBadRecord)
	}
	if err := CheckNodeName(n.Name); err != nil {
		return fmt.Errorf("%w: node: %v", ErrBadRecord, err)
	}
	if n.Port != 0 {
		if err := linkparam.CheckPort(n.Port); err != nil {
			return fmt.Errorf("%w: node %s: port %d %v", ErrBadRecord, n.Name, n.Port, err)
		}
	}
	if err := CheckVTEP(n.VTEP, underlay); err != nil {
		return fmt.Errorf("%w: node %s: %v", ErrBadRecord, n.Name, err)
	}
	return nil
}

// CheckVTEP accepts a unicast IP address (no zone) inside one of underlay,
// or anywhere when underlay is empty.
func CheckVTEP(vtep string, underlay []netip.Prefix) error {
	a, err := netip.ParseAddr(vtep)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("VTEP %q is not an IP address", vtep)
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("VTEP %s is not a unicast address", a)
	}
	if len(underlay) == 0 {
		return nil
	}
	for _, p := range underlay {
		if p.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("VTEP %s is outside the underlay %v", a, underlay)
}
