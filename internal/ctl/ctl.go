// Package ctl implements ratchetctl's commands. Each command parses its own
// flags, checks every argument before acting, and reports failure as one
// line naming the bad argument.
package ctl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/labop"
)

// usage lists connect's kind flags from their units (internal/kind).
var usage = `ratchetctl: point-to-point links between network namespaces, and CNI by hand

usage:
` + connectUsage() + `  ratchetctl disconnect EP                         remove a link ratchet made (both veth ends)
  ratchetctl run [--conf-dir DIR] [--bin-dir DIR] [--name ID] [--namespace NS] [--annotation K=V]... [--keep] -- CMD [ARGS]
                                                   run CMD in a new netns attached through CNI
                                                   (defaults: $NETCONFPATH or /etc/cni/net.d, $CNI_PATH or /opt/cni/bin)
  ratchetctl run --del --name ID [--namespace NS] [--conf-dir DIR] [--bin-dir DIR]
                                                   undo a run kept with --keep: DEL each network, remove the netns
                                                   (--namespace as the run had it)
  ratchetctl links [--store DIR] [--dot | --svg | --html | --stats] [-o json]
                                                   pods and pod links with their state (up, pending, parked, remote,
                                                   broken, pulled, impaired) and run-time settings; --stats: bytes,
                                                   packets, drops and errors toward each end's pod, carrier changes;
                                                   --svg: a picture of the lab; --html: one page, picture and tables
` + linkUsage + linkAddUsage + eventsUsage + captureUsage + `  ratchetctl health [--socket PATH] [--live] [--timeout D]
                                                   ratchetd's health on this node (exit 1: not ready, with the reason)
  ratchetctl install --bin-dir DIR --conf-dir DIR [--plugin PATH] [--extra JSON]
                                                   install the plugin, chained after the node's network
  ratchetctl install --uninstall [--on-signal [--unless-daemonset [NS/]NAME]] --bin-dir DIR --conf-dir DIR [--plugin PATH]
                                                   give the node its CNI config back and remove the plugin
                                                   (--on-signal: first wait for SIGTERM, as the DaemonSet does;
                                                   --unless-daemonset: then only if that DaemonSet is deleted,
                                                   not on a rollout; asks the API server in-cluster)

endpoints (EP), as koko writes them:
  -n NETNS,IFNAME[,CIDR...]      an 'ip netns' name
  -a PATH,IFNAME[,CIDR...]       a netns path
  -p PID,IFNAME[,CIDR...]        the netns of a process
  -c IFNAME[,CIDR...]            the current netns
  -d CONTAINER,IFNAME[,CIDR...]  a Docker (or podman service) container, via the Engine API on $DOCKER_HOST
`

// errHelp is -h or --help after a command: Main prints the usage.
var errHelp = errors.New("help requested")

// usageError is a bad command line; Main prints it with a hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func badArg(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// Main runs ratchetctl with args (without the program name) and returns the
// exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "connect":
		err = connect(args[1:], stdout)
	case "disconnect":
		err = disconnect(args[1:], stdout)
	case "run":
		var status int
		status, err = run(args[1:], stdout, stderr)
		if err == nil {
			return status
		}
	case "links":
		err = links(args[1:], stdout)
	case "events":
		err = eventsCmd(args[1:], stdout)
	case "link":
		err = linkCmd(args[1:], stdout)
	case "capture":
		err = captureCmd(args[1:], stdout, stderr)
	case "install":
		err = installCmd(args[1:], stdout)
	case "health":
		err = health(args[1:], stdout)
	default:
		err = badArg("unknown command %q", args[0])
	}
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "ratchetctl %s: %s\n", escapeControls(args[0]), escapeControls(err.Error()))
		// The live-lab operations refuse malformed arguments too.
		var ue *usageError
		var ae *labop.ArgumentError
		if errors.As(err, &ue) || errors.As(err, &ae) {
			fmt.Fprintln(stderr, "see 'ratchetctl --help'")
			return 2
		}
		return 1
	}
	return 0
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return badArg("%v", err)
	}
	if fs.NArg() > 0 && fs.Name() != "run" {
		return badArg("unexpected argument %q", fs.Arg(0))
	}
	return nil
}
