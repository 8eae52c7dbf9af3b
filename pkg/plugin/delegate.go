package plugin

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ratchet-cni/ratchet/pkg/netconf"
)

// Ratchet compatibility mode: like the old Ratchet, ratchet can hand pods
// with no links to another plugin (delegate), and give pods with links a
// boot network first (bootNetwork), both run through libcni's invoke
// package with this call's CNI_* environment.

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
	res, err := invoke.DelegateAdd(ctx, typ, b, nil)
	if err != nil {
		return nil, delegateError(which, typ, err)
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
	if err := invoke.DelegateDel(ctx, typ, b, nil); err != nil {
		return delegateError(which, typ, err)
	}
	return nil
}

// delegateError keeps the delegate's own CNI error code and says who failed.
func delegateError(which, typ string, err error) error {
	if e, ok := err.(*types.Error); ok {
		return types.NewError(e.Code, fmt.Sprintf("%s (%s): %s", which, typ, e.Msg), e.Details)
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("%s (%s): %v", which, typ, err), "")
}
