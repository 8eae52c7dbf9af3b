package link

import (
	"os"
	"path/filepath"
	"runtime"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netns"
)

// NetnsDir is where named network namespaces are bind-mounted, as by
// `ip netns add`.
const NetnsDir = "/var/run/netns"

// CreateNamedNetns creates a network namespace bind-mounted at
// /var/run/netns/name, as `ip netns add` does, and returns its path. The
// calling thread's own namespace is left as it was.
func CreateNamedNetns(name string) (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return "", err
	}
	defer orig.Close()
	created, err := netns.NewNamed(name) // moves this thread into it
	if serr := netns.Set(orig); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return "", err
	}
	created.Close()
	return filepath.Join(NetnsDir, name), nil
}

// DeleteNamedNetns unmounts and removes /var/run/netns/name; the
// namespace itself goes when nothing else holds it.
func DeleteNamedNetns(name string) error {
	return netns.DeleteNamed(name)
}

// WriteSysctl sets a sysctl under /proc/sys inside n (net.* sysctls belong
// to the writing thread's namespace).
func WriteSysctl(n ns.NetNS, key, value string) error {
	return n.Do(func(ns.NetNS) error {
		return os.WriteFile(filepath.Join("/proc/sys", filepath.FromSlash(key)), []byte(value), 0o644)
	})
}

// SetLoopbackUp brings lo up in the namespace at path.
func SetLoopbackUp(path string) error {
	n, err := ns.GetNS(path)
	if err != nil {
		return err
	}
	defer n.Close()
	h, err := NewHandle(n)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	return h.LinkSetUp(lo)
}
