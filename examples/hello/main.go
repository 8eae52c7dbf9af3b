// Command hello is the tutorial's first CNI plugin in Go. Like the bash
// dummy plugin it wires nothing: it logs what the runtime hands it and gives
// the answer a well-behaved plugin must give, so it can run alone or chained
// after any other plugin in a conflist.
//
// Config (stdin): the usual cniVersion, name and type, plus an optional
// "logFile" that receives a copy of every log line.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// netConf is hello's config: the fields every plugin receives (cniVersion,
// name, type, prevResult, ...) plus its own.
type netConf struct {
	types.PluginConf
	LogFile string `json:"logFile"`
}

func init() {
	// Namespace switches apply to one OS thread, so Go plugins pin main to
	// one. hello never switches, but every plugin grown from it will.
	runtime.LockOSThread()
}

func main() {
	// skel does the protocol work: it reads CNI_* and stdin, rejects missing
	// variables and unsupported versions with CNI error codes, answers
	// VERSION itself, and prints any error we return as CNI error JSON.
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdLogOnly,
		Check:  cmdLogOnly,
		Status: cmdLogOnly,
		GC:     cmdLogOnly,
	}, version.All, "CNI plugin hello (the ratchet tutorial's first plugin)")
}

// cmdAdd answers ADD. stdout is the protocol channel: the result printed
// there is what the runtime (or the next plugin in the chain) receives.
func cmdAdd(args *skel.CmdArgs) error {
	conf, err := load(args)
	if err != nil {
		return err
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot parse prevResult", err.Error())
	}
	// Chained after another plugin: hand its result on unchanged, in the
	// version our config asks for, or the interfaces it made are forgotten.
	if conf.PrevResult != nil {
		return types.PrintResult(conf.PrevResult, conf.CNIVersion)
	}
	// First plugin: we made nothing, so the answer is an empty result in the
	// config's version. It is built in that version rather than converted
	// from the current one because 0.1.0/0.2.0 converters refuse a result
	// without IPs.
	empty, err := version.NewResult(conf.CNIVersion, fmt.Appendf(nil, `{"cniVersion":%q}`, conf.CNIVersion))
	if err != nil {
		return err
	}
	return empty.Print()
}

// cmdLogOnly answers DEL, CHECK, STATUS and GC: hello made nothing, so there
// is nothing to remove, verify or report. Success is exit 0, no output.
func cmdLogOnly(args *skel.CmdArgs) error {
	_, err := load(args)
	return err
}

// load parses the config and logs the call; every command starts here.
func load(args *skel.CmdArgs) (*netConf, error) {
	conf := &netConf{}
	if err := json.Unmarshal(args.StdinData, conf); err != nil {
		// A CNI error code tells the runtime what went wrong (6: bad JSON);
		// a plain error would reach it as 999, "internal error".
		return nil, types.NewError(types.ErrDecodingFailure, "cannot parse network config", err.Error())
	}
	return conf, logCall(args, conf.LogFile)
}

// logCall writes what the runtime handed us to stderr (stdout is reserved
// for the result) and, when logFile is set, appends the same lines there:
// runtimes often discard a plugin's stderr, a file survives.
func logCall(args *skel.CmdArgs, logFile string) error {
	var out io.Writer = os.Stderr
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return types.NewError(types.ErrInvalidNetworkConfig, "cannot open logFile "+logFile, err.Error())
		}
		defer f.Close()
		out = io.MultiWriter(os.Stderr, f)
	}
	l := log.New(out, "hello: ", log.LstdFlags)
	l.Printf("CNI_COMMAND=%s CNI_CONTAINERID=%s CNI_NETNS=%s CNI_IFNAME=%s CNI_ARGS=%s",
		os.Getenv("CNI_COMMAND"), args.ContainerID, args.Netns, args.IfName, args.Args)
	l.Printf("config: %s", args.StdinData)
	return nil
}
