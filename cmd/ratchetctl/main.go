// Command ratchetctl is ratchet's CLI: connect and disconnect links by hand
// (koko-compatible), run a command in a fresh netns through CNI plugins,
// list links, and install the plugin on a node.
package main

import (
	"os"
	"runtime"

	"github.com/ratchet-cni/ratchet/internal/ctl"
)

func init() {
	// Namespace switches are per OS thread: keep main on one.
	runtime.LockOSThread()
}

func main() {
	os.Exit(ctl.Main(os.Args[1:], os.Stdout, os.Stderr))
}
