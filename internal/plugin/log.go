package plugin

import (
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// newLogger logs to the configured file, or to stderr: stdout belongs to
// the CNI protocol.
func newLogger(conf *netconf.NetConf, args *skel.CmdArgs) *slog.Logger {
	var out io.Writer = os.Stderr
	var openErr error
	if conf.LogFile != "" {
		// O_NOFOLLOW: the plugin runs as root, so a symlink planted at the
		// log path would otherwise make it append to (or create) any file.
		var f *os.File
		if f, openErr = os.OpenFile(conf.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600); openErr == nil {
			out = f // closed at process exit: a plugin process is short-lived
		}
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(conf.LogLevel))
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level})).With(
		"network", conf.Name, "container", args.ContainerID, "ifname", args.IfName)
	if openErr != nil {
		log.Warn("logFile not opened (a symlink is refused); logging to stderr", "logFile", conf.LogFile, "err", openErr)
	}
	return log
}
