package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// health asks ratchetd, through its socket, how it is: the exec probe of
// the DaemonSet's ratchetd container, and what a user runs on a node whose
// pods' cross-node links do not come up. It prints each check and fails
// (exit 1, the reason on stderr) when the agent is not ready, or with
// --live only when its loop is stuck.
func health(args []string, stdout io.Writer) error {
	fs := newFlagSet("health")
	socket := fs.String("socket", netconf.DefaultAgentSocket, "ratchetd's socket (store.agentSocket in the network config)")
	live := fs.Bool("live", false, "fail only when ratchetd is not live (stuck), not when it is not ready")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := agentapi.Call(ctx, *socket, &agentapi.Request{Op: agentapi.OpHealth})
	var callErr *agentapi.CallError
	if err != nil && (!errors.As(err, &callErr) || resp == nil || resp.Health == nil) {
		return err
	}
	if resp.Health == nil {
		return fmt.Errorf("ratchetd at %s answered without its health (an older ratchetd?)", *socket)
	}
	h := resp.Health
	for _, c := range h.Checks {
		if c.OK {
			fmt.Fprintf(stdout, "%-10s ok\n", c.Name)
		} else {
			fmt.Fprintf(stdout, "%-10s FAILING since %s: %s\n", c.Name, c.Since.UTC().Format(time.RFC3339), c.Reason)
		}
	}
	switch {
	case !h.Live:
		return errors.New("ratchetd is not live: no reconcile pass has ended for too long")
	case *live:
		return nil
	case !h.Ready:
		return fmt.Errorf("ratchetd is not ready: %s", h.Reason())
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}
