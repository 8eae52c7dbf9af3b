package plugin

import (
	"fmt"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

var now = time.Now

// buildResult returns the ADD result: in chained mode the previous
// plugin's result with ratchet's interfaces, IPs and routes appended;
// otherwise ratchet's own. The ends named in fromAnnotations are listed as
// interfaces only: runtimes report a result's IPs as the pod's IPs (CRI-O
// every one of them, containerd CNI_IFNAME's), and those are the cluster's
// to choose, not a pod's annotations' (as Multus keeps secondary networks
// out of the pod IP).
func buildResult(conf *netconf.NetConf, args *skel.CmdArgs, ends []*link.Endpoint, fromAnnotations map[string]bool) (*current.Result, error) {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if conf.PrevResult != nil {
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "cannot convert prevResult: "+err.Error(), "")
		}
		res = prev
	}
	for _, end := range ends {
		idx := len(res.Interfaces)
		res.Interfaces = append(res.Interfaces, &current.Interface{
			Name: end.Name, Mac: end.MAC.String(), Mtu: end.MTU, Sandbox: args.Netns,
		})
		if fromAnnotations[end.Name] {
			continue
		}
		for _, a := range end.Addrs {
			res.IPs = append(res.IPs, &current.IPConfig{Interface: current.Int(idx), Address: *a})
		}
		for _, r := range end.Routes {
			res.Routes = append(res.Routes, &types.Route{Dst: *r.Dst, GW: r.GW})
		}
	}
	return res, nil
}

// printResult prints res in version v. The 0.1.0 and 0.2.0 formats cannot
// express a result without IPs (the converters refuse it), so there an
// IP-less result is printed as an empty result built in that version.
func printResult(res *current.Result, v string) error {
	if len(res.IPs) == 0 {
		if modern, _ := version.GreaterThanOrEqualTo(v, "0.3.0"); !modern {
			empty, err := version.NewResult(v, fmt.Appendf(nil, `{"cniVersion":%q}`, v))
			if err != nil {
				return err
			}
			return empty.Print()
		}
	}
	return types.PrintResult(res, v)
}
