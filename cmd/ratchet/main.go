// The plugin runs on one P (see internal/oneproc), so the runtime need not
// size GOMAXPROCS from the cgroup's CPU limit nor start a goroutine that
// watches the limit, work that shows in every exec (docs/performance.md,
// "No cgroup-sized GOMAXPROCS").

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// Command ratchet is the CNI plugin: point-to-point links between
// containers (veth on one node, VXLAN across nodes).
package main

import (
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"

	// First, for its init: one P, set before the other packages' inits.
	_ "github.com/ratchet-cni/ratchet/cmd/ratchet/internal/oneproc"
	"github.com/ratchet-cni/ratchet/internal/plugin"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// faultHook is the plugin's fault hook: nil, except in the test builds of
// faultinject.go.
var faultHook func(step string) error

func init() {
	// Namespace switches are per OS thread: keep main on one.
	runtime.LockOSThread()
}

func main() {
	p := &plugin.Plugin{Fault: faultHook}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    p.Add,
		Del:    p.Del,
		Check:  p.Check,
		Status: p.Status,
		GC:     p.GC,
	}, version.All, "CNI plugin ratchet "+Version)
}
