package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// invocation is one exec of a CNI plugin, made as a runtime makes it
// (libcni's invoke package): the CNI_* environment, the network config on
// stdin, stdout (the result or a CNI error) and stderr captured.
type invocation struct {
	bin         string
	command     string // CNI_COMMAND
	containerID string
	netns       string // CNI_NETNS
	ifname      string // CNI_IFNAME
	args        string // CNI_ARGS
	path        string // CNI_PATH
	conf        []byte
	// node is the namespace the plugin process starts in (a simulated
	// node); nil means the namespace this tool runs in.
	node *nsRef
}

// outcome is what one exec cost and returned.
type outcome struct {
	wall   time.Duration
	maxRSS int64 // KiB, from wait4's rusage of the plugin process
	stdout []byte
}

// hostNS is the namespace this tool started in, to which every thread that
// visits a node returns.
var hostNS netns.NsHandle

func (inv invocation) env() []string {
	ifname := inv.ifname
	if ifname == "" {
		ifname = "eth0"
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"CNI_COMMAND=" + inv.command,
		"CNI_CONTAINERID=" + inv.containerID,
		"CNI_NETNS=" + inv.netns,
		"CNI_IFNAME=" + ifname,
		"CNI_ARGS=" + inv.args,
		"CNI_PATH=" + inv.path,
	}
}

// run execs the plugin and times it from just before fork to just after
// wait4 returned and stdout was drained. When a node is given, the process
// is forked from a thread that has entered the node's namespace, so it
// starts there (as `nsenter --net` would, without timing nsenter's own
// exec).
func (inv invocation) run(ctx context.Context) (outcome, error) {
	cmd := exec.CommandContext(ctx, inv.bin)
	cmd.Env = inv.env()
	cmd.Stdin = bytes.NewReader(inv.conf)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	var start time.Time
	var wall time.Duration
	var err error
	if inv.node != nil {
		err = inNode(inv.node, func() error {
			start = time.Now()
			err := cmd.Start()
			if err == nil {
				err = cmd.Wait()
			}
			wall = time.Since(start)
			return err
		})
	} else {
		start = time.Now()
		err = cmd.Run()
		wall = time.Since(start)
	}
	out := outcome{wall: wall, stdout: stdout.Bytes()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			out.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, fmt.Errorf("%s %s (container %s): %v\nstdout: %s\nstderr: %s", inv.bin, inv.command, inv.containerID, err,
			strings.TrimSpace(stdout.String()), tail(stderr.String(), 2000))
	}
	return out, nil
}

// inNode runs f on a thread that is in node's namespace; processes f
// starts begin there.
func inNode(node *nsRef, f func() error) error {
	runtime.LockOSThread()
	if err := netns.Set(node.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter node %s: %w", node.Name, err)
	}
	ferr := f()
	if err := netns.Set(hostNS); err != nil {
		// Leave the thread locked, so that Go retires it with its
		// goroutine rather than reuse a thread in the wrong namespace; the
		// error ends the run.
		return fmt.Errorf("return from node %s: %w", node.Name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// interfaces counts the interfaces of a CNI result (1.0.0 and later).
func interfaces(stdout []byte) (int, error) {
	var res struct {
		Interfaces []json.RawMessage `json:"interfaces"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		return 0, fmt.Errorf("result is not JSON: %v: %s", err, tail(string(stdout), 300))
	}
	return len(res.Interfaces), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
