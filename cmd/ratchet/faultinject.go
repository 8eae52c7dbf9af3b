//go:build faultinject

package main

// Only in test builds (go build -tags faultinject): the crash-safety tests
// SIGKILL the plugin after its n-th step, and trace the steps of a run.

import (
	"os"
	"strconv"
	"syscall"
)

func init() {
	killAt, _ := strconv.Atoi(os.Getenv("RATCHET_FAULT_KILL_AT"))
	trace := os.Getenv("RATCHET_FAULT_TRACE")
	if killAt <= 0 && trace == "" {
		return
	}
	steps := 0
	faultHook = func(step string) error {
		steps++
		if trace != "" {
			if f, err := os.OpenFile(trace, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
				_, _ = f.WriteString(step + "\n")
				f.Close()
			}
		}
		if steps == killAt {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
		return nil
	}
}
