package plugin

import (
	"io"
	"log/slog"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// newLogger logs to the configured file, or to stderr: stdout belongs to
// the CNI protocol.
func newLogger(conf *netconf.NetConf, args *skel.CmdArgs) *slog.Logger {
	var out io.Writer = os.Stderr
	if conf.LogFile != "" {
		if f, err := os.OpenFile(conf.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			out = f // closed at process exit: a plugin process is short-lived
		}
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(conf.LogLevel))
	return slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})).With(
		"network", conf.Name, "container", args.ContainerID, "ifname", args.IfName)
}
