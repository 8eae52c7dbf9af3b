package plugin_test

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/testutil"
)

// TestBadInput feeds ADD one bad input at a time: each gets the right CNI
// code and a message naming the field and the value, and nothing is made.
func TestBadInput(t *testing.T) {
	pod, peer, dir := testutil.NewNS(t), testutil.NewNS(t), t.TempDir()
	peerPath := peer.Path()
	good := func(extra string) string { // a valid veth link with extra fields spliced in
		return `{"name":"in1","ips":["192.0.2.1/24"],"peer":{"netns":"` + peerPath + `","name":"in2"}` + extra + `}`
	}
	conf := func(links ...string) string {
		return `{"cniVersion":"1.0.0","name":"lab","type":"ratchet","store":{"dir":"` + dir + `"},"links":[` + strings.Join(links, ",") + `]}`
	}
	top := func(fields string) string {
		return `{"cniVersion":"1.0.0","name":"lab","type":"ratchet","store":{"dir":"` + dir + `"},` + fields + `}`
	}
	vx := func(v string) string { return `{"name":"vx0","vxlan":` + v + `}` }
	env := func(drop string) []string {
		all := []string{"CNI_COMMAND=ADD", "CNI_CONTAINERID=ctr1", "CNI_NETNS=" + pod.Path(), "CNI_IFNAME=eth0", "CNI_PATH=/opt/cni/bin"}
		var kept []string
		for _, e := range all {
			if !strings.HasPrefix(e, drop+"=") {
				kept = append(kept, e)
			}
		}
		return kept
	}
	prev := `"prevResult":{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"` + pod.Path() + `"}]}`

	cases := []struct {
		name  string
		conf  string
		env   []string
		netns string
		code  uint
		want  []string // substrings of the message
	}{
		{"not JSON", `{"cniVersion":`, nil, "", types.ErrDecodingFailure, []string{"network config", "JSON"}},
		{"unknown cniVersion", `{"cniVersion":"9.9.9","name":"lab","type":"ratchet"}`, nil, "", types.ErrIncompatibleCNIVersion, []string{"incompatible"}},
		{"missing network name", `{"cniVersion":"1.0.0","type":"ratchet"}`, nil, "", types.ErrInvalidNetworkConfig, []string{"name"}},
		{"name too long", conf(`{"name":"abcdefghijklmnop","peer":{"netns":"` + peerPath + `"}}`), nil, "", 7, []string{"links[0].name", "abcdefghijklmnop", "15"}},
		{"name with slash", conf(`{"name":"a/b","peer":{"netns":"` + peerPath + `"}}`), nil, "", 7, []string{"links[0].name", `"a/b"`}},
		{"name with space", conf(`{"name":"a b","peer":{"netns":"` + peerPath + `"}}`), nil, "", 7, []string{"links[0].name", `"a b"`}},
		{"name with colon", conf(`{"name":"a:b","peer":{"netns":"` + peerPath + `"}}`), nil, "", 7, []string{"links[0].name", `"a:b"`}},
		{"name is dot-dot", conf(`{"name":"..","peer":{"netns":"` + peerPath + `"}}`), nil, "", 7, []string{"links[0].name", `".."`}},
		{"peer name too long", conf(`{"name":"in1","peer":{"netns":"` + peerPath + `","name":"0123456789abcdefg"}}`), nil, "", 7, []string{"links[0].peer.name", "0123456789abcdefg"}},
		{"CIDR without prefix", conf(good(`,"mac":"02:00:00:00:00:01"`), `{"name":"in3","ips":["192.0.2.9"],"peer":{"netns":"`+peerPath+`"}}`), nil, "", 7, []string{"links[1].ips[0]", "192.0.2.9"}},
		{"CIDR out of range", conf(`{"name":"in1","ips":["192.0.2.300/24"],"peer":{"netns":"` + peerPath + `"}}`), nil, "", 7, []string{"links[0].ips[0]", "192.0.2.300/24"}},
		{"bad IPv6 CIDR", conf(`{"name":"in1","ips":["2001:db8::g/64"],"peer":{"netns":"` + peerPath + `"}}`), nil, "", 7, []string{"links[0].ips[0]", "2001:db8::g/64"}},
		{"bad MAC", conf(good(`,"mac":"02:00:00:zz:00:01"`)), nil, "", 7, []string{"links[0].mac", "02:00:00:zz:00:01"}},
		{"multicast MAC", conf(good(`,"mac":"01:00:5e:00:00:01"`)), nil, "", 7, []string{"links[0].mac", "01:00:5e:00:00:01", "unicast"}},
		{"MTU too small", conf(good(`,"mtu":67`)), nil, "", 7, []string{"links[0].mtu", "67"}},
		{"MTU too big", conf(good(`,"mtu":65536`)), nil, "", 7, []string{"links[0].mtu", "65536"}},
		{"MTU not a number", conf(good(`,"mtu":"big"`)), nil, "", 7, []string{"links[0]", "mtu"}},
		{"VNI zero", conf(vx(`{"remote":"192.0.2.2","vni":0}`)), nil, "", 7, []string{"links[0].vxlan.vni", "0"}},
		{"VNI too big", conf(vx(`{"remote":"192.0.2.2","vni":16777216}`)), nil, "", 7, []string{"links[0].vxlan.vni", "16777216"}},
		{"vxlan remote not an IP", conf(vx(`{"remote":"node-b","vni":10}`)), nil, "", 7, []string{"links[0].vxlan.remote", "node-b"}},
		{"vxlan port out of range", conf(vx(`{"remote":"192.0.2.2","vni":10,"port":70000}`)), nil, "", 7, []string{"links[0].vxlan.port", "70000"}},
		{"duplicate names", conf(good(""), good("")), nil, "", 7, []string{"links[1].name", "in1", "links[0]"}},
		{"two peer kinds", conf(good(`,"vxlan":{"remote":"192.0.2.2","vni":10}`)), nil, "", 7, []string{"links[0]", "2 peer kinds"}},
		{"no peer kind", conf(`{"name":"in1"}`), nil, "", 7, []string{"links[0]", "0 peer kinds"}},
		{"unknown link field", conf(good(`,"ip":"192.0.2.1/24"`)), nil, "", 7, []string{"links[0]", `unknown field "ip"`}},
		{"macvlan mode", conf(`{"name":"mv0","macvlan":{"master":"eth0","mode":"turbo"}}`), nil, "", 7, []string{"links[0].macvlan.mode", "turbo"}},
		{"route dst", conf(good(`,"routes":[{"dst":"198.51.100.0"}]`)), nil, "", 7, []string{"links[0].routes[0].dst", "198.51.100.0"}},
		{"route gw family", conf(good(`,"routes":[{"dst":"198.51.100.0/24","gw":"2001:db8::1"}]`)), nil, "", 7, []string{"links[0].routes[0].gw", "2001:db8::1"}},
		{"netem delay", conf(good(`,"netem":{"delay":"soon"}`)), nil, "", 7, []string{"links[0].netem", "soon"}},
		{"netem delay past the kernel's field", conf(good(`,"netem":{"delay":"1h"}`)), nil, "", 7, []string{"links[0].netem", "delay", "1h"}},
		{"netem rate NaN", conf(good(`,"netem":{"rate":"NaNmbit"}`)), nil, "", 7, []string{"links[0].netem", "rate", "NaNmbit"}},
		{"peer netns missing", conf(`{"name":"in1","peer":{"netns":"/var/run/netns/ratchet-test-absent"}}`), nil, "", 7, []string{"links[0].peer.netns", "/var/run/netns/ratchet-test-absent"}},
		{"too many links", top(`"maxLinksPerPod":1,"links":[` + good("") + `,{"name":"in2","peer":{"netns":"` + peerPath + `"}}]`), nil, "", 7, []string{"links", "maxLinksPerPod"}},
		{"maxLinksPerPod wrong type", top(`"maxLinksPerPod":"many"`), nil, "", 7, []string{"maxLinksPerPod", "string"}},
		{"store type", top(`"store":{"type":"redis"}`), nil, "", 7, []string{"store.type", "redis"}},
		{"etcd without endpoints", top(`"store":{"type":"etcd"}`), nil, "", 7, []string{"store.endpoints"}},
		{"etcd timeout", top(`"store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"],"insecure":true,"timeout":"soon"}`), nil, "", 7, []string{"store.timeout", "soon"}},
		{"etcd prefix", top(`"store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"],"insecure":true,"prefix":"ratchet"}`), nil, "", 7, []string{"store.prefix", "ratchet"}},
		{"etcd agent socket", top(`"store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"],"insecure":true,"agentSocket":"ratchetd.sock"}`), nil, "", 7, []string{"store.agentSocket", "ratchetd.sock"}},
		{"etcd cert without key", top(`"store":{"type":"etcd","endpoints":["https://192.0.2.1:2379"],"tls":{"cert":"/etc/ratchet/c.crt"}}`), nil, "", 7, []string{"store.tls", "/etc/ratchet/c.crt"}},
		{"etcd plaintext endpoint", top(`"store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"]}`), nil, "", 7, []string{"store.endpoints", "http://192.0.2.1:2379", "store.insecure"}},
		{"etcd endpoint without TLS", top(`"store":{"type":"etcd","endpoints":["192.0.2.1:2379"]}`), nil, "", 7, []string{"store.endpoints", "192.0.2.1:2379"}},
		{"underlay CIDR", top(`"vxlan":{"underlayCIDRs":["192.0.2.0/33"]}`), nil, "", 7, []string{"vxlan.underlayCIDRs", "192.0.2.0/33"}},
		{"vtep outside the underlay", top(`"node":{"vtepIP":"203.0.113.66"},"vxlan":{"underlayCIDRs":["192.0.2.0/24"]}`), nil, "", 7, []string{"node.vtepIP", "203.0.113.66"}},
		{"log level", top(`"logLevel":"loud"`), nil, "", 7, []string{"logLevel", "loud"}},
		{"vni range", top(`"vxlan":{"vniRange":"9-3"}`), nil, "", 7, []string{"vxlan.vniRange", "9-3"}},
		{"chained link without name", top(prev + `,"links":[{"peer":{"netns":"` + peerPath + `"}}]`), nil, "", 7, []string{"links[0].name", "chained"}},
		{"chained link named CNI_IFNAME", top(prev + `,"links":[{"name":"eth0","peer":{"netns":"` + peerPath + `"}}]`), nil, "", 7, []string{"links[0].name", "eth0", "CNI_IFNAME"}},
		{"missing CNI_CONTAINERID", conf(good("")), env("CNI_CONTAINERID"), "", types.ErrInvalidEnvironmentVariables, []string{"CNI_CONTAINERID"}},
		{"missing CNI_IFNAME", conf(good("")), env("CNI_IFNAME"), "", types.ErrInvalidEnvironmentVariables, []string{"CNI_IFNAME"}},
		{"missing CNI_NETNS", conf(good("")), env("CNI_NETNS"), "", types.ErrInvalidEnvironmentVariables, []string{"CNI_NETNS"}},
		{"netns does not exist", conf(good("")), nil, "/var/run/netns/ratchet-test-absent", types.ErrInvalidNetNS, []string{"CNI_NETNS", "/var/run/netns/ratchet-test-absent"}},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d bad inputs", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			netns := pod.Path()
			if c.netns != "" {
				netns = c.netns
			}
			_, cniErr := run(t, call{cmd: "ADD", netns: netns, conf: c.conf, env: c.env})
			if cniErr == nil {
				t.Fatal("ADD accepted it")
			}
			if cniErr.Code != c.code {
				t.Errorf("code %d, want %d (%s)", cniErr.Code, c.code, cniErr.Msg)
			}
			for _, w := range c.want {
				if !strings.Contains(cniErr.Msg+" "+cniErr.Details, w) {
					t.Errorf("message %q does not mention %q", cniErr.Msg, w)
				}
			}
			noLinks(t, pod, peer)
		})
	}
	if n := records(t, dir); n != 0 {
		t.Fatalf("bad inputs left %d records", n)
	}
}

// TestAddRefusesItsOwnNamespace: CNI_NETNS naming the namespace the plugin
// runs in is refused before anything is made there (skel only checks after
// ADD). The plugin runs in a throwaway "node" so a failure cannot reach
// the host.
func TestAddRefusesItsOwnNamespace(t *testing.T) {
	node, peer := testutil.NewNS(t), testutil.NewNS(t)
	conf := confJSON(t, "1.0.0", t.TempDir(), map[string]any{"links": []any{vethTo("in1", "192.0.2.1/24", peer, "in2", "192.0.2.2/24")}})
	_, cniErr := run(t, call{cmd: "ADD", netns: node.Path(), conf: conf, node: node})
	if cniErr == nil || cniErr.Code != types.ErrInvalidNetNS || !strings.Contains(cniErr.Msg, "own network namespace") {
		t.Fatalf("got %v, want code 8", cniErr)
	}
	noLinks(t, node, peer)
}
