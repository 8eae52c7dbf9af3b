package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ratchet-cni/ratchet/internal/install"
)

// install copies the plugin onto the node and chains it after the node's
// network: what a DaemonSet's init container runs. With --uninstall it
// undoes that; with --uninstall --on-signal it first waits for SIGTERM or
// SIGINT, which is what the DaemonSet's main container runs, so that
// deleting the DaemonSet gives the node its CNI config back.
func installCmd(args []string, stdout io.Writer) error {
	fs := newFlagSet("install")
	binDir := fs.String("bin-dir", "/opt/cni/bin", "where runtimes find CNI plugins")
	confDir := fs.String("conf-dir", "/etc/cni/net.d", "where runtimes find network configs")
	plugin := fs.String("plugin", "", "the ratchet binary to install (default: the one beside ratchetctl)")
	extra := fs.String("extra", "", "JSON object merged into ratchet's plugin entry, e.g. '{\"logLevel\":\"debug\"}'")
	uninstall := fs.Bool("uninstall", false, "remove ratchet from the node instead")
	onSignal := fs.Bool("on-signal", false, "with --uninstall: wait for SIGTERM or SIGINT first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *onSignal && !*uninstall {
		return badArg("--on-signal: only with --uninstall")
	}
	if *uninstall && *extra != "" {
		return badArg("--extra: not with --uninstall")
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

// waitForSignal blocks until SIGTERM or SIGINT: the kubelet stops a
// container with SIGTERM when its pod is deleted.
func waitForSignal(stdout io.Writer) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(stdout, "waiting for SIGTERM to uninstall")
	<-ctx.Done()
}
