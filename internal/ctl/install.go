package ctl

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ratchet-cni/ratchet/internal/install"
)

// install copies the plugin onto the node and chains it after the node's
// network: what a DaemonSet's init container runs.
func installCmd(args []string, stdout io.Writer) error {
	fs := newFlagSet("install")
	binDir := fs.String("bin-dir", "/opt/cni/bin", "where runtimes find CNI plugins")
	confDir := fs.String("conf-dir", "/etc/cni/net.d", "where runtimes find network configs")
	plugin := fs.String("plugin", "", "the ratchet binary to install (default: the one beside ratchetctl)")
	extra := fs.String("extra", "", "JSON object merged into ratchet's plugin entry, e.g. '{\"logLevel\":\"debug\"}'")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	opts := install.Options{PluginBinary: *plugin, BinDir: *binDir, ConfDir: *confDir}
	if opts.PluginBinary == "" {
		p, err := install.DefaultPluginBinary()
		if err != nil {
			return err
		}
		opts.PluginBinary = p
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
