package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ratchet-cni/ratchet/internal/install"
)

// install copies the plugin onto the node and chains it after the node's
// network: what a DaemonSet's init container runs. With --uninstall it
// undoes that; with --uninstall --on-signal it first waits for SIGTERM or
// SIGINT, which is what the DaemonSet's main container runs, so that
// deleting the DaemonSet gives the node its CNI config back. With
// --unless-daemonset it then uninstalls only if that DaemonSet is deleted:
// a rollout, a drain or a pod restart also sends SIGTERM, and must leave
// ratchet installed (install.ShouldUninstall).
func installCmd(args []string, stdout io.Writer) error {
	fs := newFlagSet("install")
	binDir := fs.String("bin-dir", "/opt/cni/bin", "where runtimes find CNI plugins")
	confDir := fs.String("conf-dir", "/etc/cni/net.d", "where runtimes find network configs")
	plugin := fs.String("plugin", "", "the ratchet binary to install (default: the one beside ratchetctl)")
	extra := fs.String("extra", "", "JSON object merged into ratchet's plugin entry, e.g. '{\"logLevel\":\"debug\"}'")
	uninstall := fs.Bool("uninstall", false, "remove ratchet from the node instead")
	onSignal := fs.Bool("on-signal", false, "with --uninstall: wait for SIGTERM or SIGINT first")
	unlessDS := fs.String("unless-daemonset", "", "with --on-signal: uninstall only if this DaemonSet ([NAMESPACE/]NAME) is deleted, asking the API server in-cluster")
	saDir := fs.String("service-account-dir", install.ServiceAccountDir, "with --unless-daemonset: the pod's service account mount (token, ca.crt, namespace)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *onSignal && !*uninstall {
		return badArg("--on-signal: only with --uninstall")
	}
	if *uninstall && *extra != "" {
		return badArg("--extra: not with --uninstall")
	}
	if *unlessDS != "" && !*onSignal {
		return badArg("--unless-daemonset: only with --uninstall --on-signal")
	}
	var owner *daemonSetCheck
	if *unlessDS != "" {
		// Checked before the wait, so that a wrong name or a pod without
		// its service account fails at once, in the container's log,
		// rather than at the SIGTERM.
		c, err := newDaemonSetCheck(*unlessDS, *saDir)
		if err != nil {
			return err
		}
		owner = c
	}
	opts := install.Options{PluginBinary: *plugin, BinDir: *binDir, ConfDir: *confDir}
	if opts.PluginBinary == "" {
		p, err := install.DefaultPluginBinary()
		if err != nil {
			return err
		}
		opts.PluginBinary = p
	}
	if *uninstall {
		if *onSignal {
			waitForSignal(stdout)
		}
		if owner != nil {
			ok, why := install.ShouldUninstall(context.Background(), owner.api, owner.ref, daemonSetTimeout)
			fmt.Fprintln(stdout, why)
			if !ok {
				return nil
			}
		}
		report, err := install.Uninstall(opts)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, report.String())
		return nil
	}
	if *extra != "" {
		if err := json.Unmarshal([]byte(*extra), &opts.Extra); err != nil {
			return badArg("--extra %q: not a JSON object: %v", *extra, err)
		}
	}
	report, err := install.Install(opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, report.String())
	return nil
}

// daemonSetTimeout bounds the one GET at SIGTERM: it must end well within
// the pod's terminationGracePeriodSeconds (5 s in deploy/), after which the
// kubelet kills the container whatever it is doing.
const daemonSetTimeout = 3 * time.Second

// daemonSetCheck is the DaemonSet whose deletion --unless-daemonset waits
// for, and the in-cluster API server to ask.
type daemonSetCheck struct {
	ref install.DaemonSetRef
	api *install.APIServer
}

// newDaemonSetCheck reads --unless-daemonset; a bare NAME is in the pod's
// namespace (the namespace file of the service account mount, saDir).
func newDaemonSetCheck(arg, saDir string) (*daemonSetCheck, error) {
	ns := ""
	if b, err := os.ReadFile(filepath.Join(saDir, "namespace")); err == nil {
		ns = strings.TrimSpace(string(b))
	}
	ref, err := install.ParseDaemonSetRef(arg, ns)
	if err != nil {
		return nil, badArg("--unless-daemonset: %v", err)
	}
	api, err := install.InClusterAPIServer(saDir)
	if err != nil {
		return nil, fmt.Errorf("--unless-daemonset %s: %w", ref, err)
	}
	return &daemonSetCheck{ref: ref, api: api}, nil
}

// waitForSignal blocks until SIGTERM or SIGINT: the kubelet stops a
// container with SIGTERM when its pod is deleted.
func waitForSignal(stdout io.Writer) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(stdout, "waiting for SIGTERM to uninstall")
	<-ctx.Done()
}
