// Command ratchet is the CNI plugin: point-to-point links between
// containers (veth on one node, VXLAN across nodes).
package main

import (
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/pkg/plugin"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func init() {
	// Namespace switches are per OS thread: keep main on one.
	runtime.LockOSThread()
	// A plugin run is a few milliseconds of sequential work: more than one P
	// only adds threads and wake-ups (measured here: ADD 5.0 -> 4.0-4.5 ms).
	runtime.GOMAXPROCS(1)
}

func main() {
	p := &plugin.Plugin{}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    p.Add,
		Del:    p.Del,
		Check:  p.Check,
		Status: p.Status,
		GC:     p.GC,
	}, version.All, "CNI plugin ratchet "+Version)
}
