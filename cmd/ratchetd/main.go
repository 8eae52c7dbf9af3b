// Command ratchetd is ratchet's node agent for multi-node clusters: it
// holds the node's etcd connection, answers the plugin on a unix socket and
// makes the VXLAN tunnels of cross-node pod links. See docs/multinode.md.
// Without etcd it runs on one node's local store, for its health endpoints
// and Prometheus metrics (--metrics-addr) only.
package main

import (
	"os"
	"runtime"
)

func init() {
	// Namespace work is per OS thread: keep main on one.
	runtime.LockOSThread()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}
