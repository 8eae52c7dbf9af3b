// Package oneproc keeps the plugin process on one P. It does so in its init, which runs before the init of
// almost every other package: Go initializes, among the packages whose
// imports are done, the one with the smallest import path first, and this
// package imports only the runtime. Done this early, the GOMAXPROCS(1) stop
// of the world has little to tear down; done in main's init, after every
// other package, it cost measurably more per exec (P 1's cached spans were
// released one size class at a time, each a fresh page). Measured with
// GODEBUG=inittrace=1 and interleaved execs, see docs/performance.md.
package oneproc

import "runtime"

func init() {
	// A plugin run is a short burst of sequential work: more than one P
	// only adds threads and wake-ups, which made ADD slower
	// (docs/performance.md, "GOMAXPROCS 1").
	runtime.GOMAXPROCS(1)
}
