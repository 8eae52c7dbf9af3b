package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// Ratchet compatibility mode: like the old Ratchet, ratchet can hand pods
// with no links to another plugin (delegate), and give pods with links a
// boot network first (bootNetwork). Both are run as libcni's invoke package
// runs a delegate: found in CNI_PATH, with this call's CNI_* environment and
// CNI_COMMAND set, the config on stdin. The invoke package itself is not
// used: it imports OpenTelemetry, which brings net/http and crypto/tls into
// the plugin, a bigger binary and a slower start for every exec of
// ratchet, delegating or not (docs/performance.md, "VERSION: the imports").

// Which delegate an attachment used, as recorded.
const (
	usedDelegate    = "delegate"
	usedBootNetwork = "bootNetwork"
)

// delegateConf returns the delegate's config, with the network's cniVersion
// and name filled in where it has none, and its type.
func delegateConf(conf *netconf.NetConf, which string) ([]byte, string, error) {
	raw := conf.Delegate
	if which == usedBootNetwork {
		raw = conf.BootNetwork
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", netconf.Invalid(which, string(raw), err.Error())
	}
	if _, ok := m["cniVersion"]; !ok {
		m["cniVersion"] = conf.CNIVersion
	}
	if _, ok := m["name"]; !ok {
		m["name"] = conf.Name
	}
	typ, _ := m["type"].(string)
	b, err := json.Marshal(m)
	return b, typ, err
}

// delegateAdd runs the delegate's ADD and returns its result as a current
// result.
func delegateAdd(ctx context.Context, conf *netconf.NetConf, which string) (*current.Result, error) {
	b, typ, err := delegateConf(conf, which)
	if err != nil {
		return nil, err
	}
	out, err := execDelegate(ctx, "ADD", typ, b)
	if err != nil {
		return nil, delegateError(which, typ, err)
	}
	res, err := create.CreateFromBytes(out)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("%s (%s) result: %v", which, typ, err), "")
	}
	cur, err := current.NewResultFromResult(res)
	if err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("%s (%s) result: %v", which, typ, err), "")
	}
	return cur, nil
}

// delegateDel runs the delegate's DEL.
func delegateDel(ctx context.Context, conf *netconf.NetConf, which string) error {
	b, typ, err := delegateConf(conf, which)
	if err != nil {
		return err
	}
	if _, err := execDelegate(ctx, "DEL", typ, b); err != nil {
		return delegateError(which, typ, err)
	}
	return nil
}

// execDelegate runs the plugin typ for command with conf on stdin and
// returns its stdout; a failure is the plugin's own CNI error when it
// printed one.
func execDelegate(ctx context.Context, command, typ string, conf []byte) ([]byte, error) {
	path, err := findPlugin(typ)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "CNI_COMMAND=")
	}), "CNI_COMMAND="+command)
	cmd.Stdin = bytes.NewReader(conf)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		cniErr := &types.Error{}
		if json.Unmarshal(stdout.Bytes(), cniErr) == nil && cniErr.Code != 0 {
			return nil, cniErr
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return stdout.Bytes(), nil
}

// findPlugin looks typ up in CNI_PATH. A type is a file name, never a path.
func findPlugin(typ string) (string, error) {
	if typ == "" || strings.ContainsRune(typ, '/') || typ == "." || typ == ".." {
		return "", fmt.Errorf("plugin type %q is not a file name", typ)
	}
	dirs := filepath.SplitList(os.Getenv("CNI_PATH"))
	for _, dir := range dirs {
		path := filepath.Join(dir, typ)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", fmt.Errorf("plugin %q not found in CNI_PATH %v", typ, dirs)
}

// delegateError keeps the delegate's own CNI error code and says who failed.
func delegateError(which, typ string, err error) error {
	if e, ok := err.(*types.Error); ok {
		return types.NewError(e.Code, fmt.Sprintf("%s (%s): %s", which, typ, e.Msg), e.Details)
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("%s (%s): %v", which, typ, err), "")
}
