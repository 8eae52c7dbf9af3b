package topology_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/topology"
)

func TestPodFromArgs(t *testing.T) {
	p, err := topology.PodFromArgs("IgnoreUnknown=1;K8S_POD_UID=u1;K8S_POD_NAMESPACE=lab;K8S_POD_NAME=r1;K8S_POD_INFRA_CONTAINER_ID=abc", "abc")
	if err != nil || p.String() != "lab/r1" || p.UID != "u1" {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = topology.PodFromArgs("", "default-e2e-ctr1")
	if err != nil || p.String() != "default-e2e-ctr1" {
		t.Fatalf("outside Kubernetes: %+v %v", p, err)
	}
	// podman: K8S_POD_NAME alone, with the container's name.
	p, err = topology.PodFromArgs("IgnoreUnknown=1;K8S_POD_NAME=My_Box", "0123abcd")
	if err != nil || p.String() != "0123abcd" {
		t.Fatalf("podman's CNI_ARGS: %+v %v", p, err)
	}
	for _, bad := range []string{"K8S_POD_NAMESPACE=lab;K8S_POD_NAME=R_1", "K8S_POD_NAMESPACE=../x;K8S_POD_NAME=r1", "novalue", strings.Repeat("x=y;", 20000)} {
		_, err := topology.PodFromArgs(bad, "abc")
		var e *types.Error
		if !errors.As(err, &e) || e.Code != types.ErrInvalidEnvironmentVariables {
			t.Errorf("%.40q: %v, want code 4", bad, err)
		}
	}
}

var self = topology.PodID{Namespace: "lab", Name: "r1"}

func TestDeclaredLinks(t *testing.T) {
	d, err := topology.Declared(map[string]string{"ratchet.cni.dev/links": `[
	  {"name":"e1","ips":["192.0.2.1/24"],"peer":{"pod":"r2","name":"w1"}},
	  {"name":"e2","peer":{"pod":"r3","namespace":"other","name":"w1"}}]`, "unrelated": "x"}, self, topology.Rules{AllowCrossNamespace: true, MaxLinks: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Links) != 2 || d.Links[0].Peer.String() != "lab/r2" || d.Links[1].Peer.String() != "other/r3" || d.LegacyConsent {
		t.Fatalf("%+v", d)
	}
	if d, err := topology.Declared(nil, self, topology.Rules{MaxLinks: 10}); err != nil || len(d.Links) != 0 {
		t.Fatalf("no annotations: %+v %v", d, err)
	}
}

func TestDeclaredRejects(t *testing.T) {
	for name, c := range map[string]struct {
		ann  map[string]string
		want string
	}{
		"cross namespace":   {map[string]string{"ratchet.cni.dev/links": `[{"name":"e1","peer":{"pod":"r2","namespace":"x","name":"w1"}}]`}, "allowCrossNamespace"},
		"too large":         {map[string]string{"ratchet.cni.dev/links": `[` + strings.Repeat(" ", 300<<10) + `]`}, "larger than"},
		"too many":          {map[string]string{"ratchet.cni.dev/links": `[{},{},{},{}]`}, "maxLinksPerPod"},
		"deep nesting":      {map[string]string{"ratchet.cni.dev/links": strings.Repeat("[", 20000) + strings.Repeat("]", 20000)}, "ratchet.cni.dev/links"},
		"host netns":        {map[string]string{"ratchet.cni.dev/links": `[{"name":"e1","peer":{"netns":"/proc/1/ns/net"}}]`}, "not allowed in pod annotations"},
		"duplicate":         {map[string]string{"ratchet.cni.dev/links": `[{"name":"e1","peer":{"pod":"a","name":"x"}},{"name":"e1","peer":{"pod":"b","name":"x"}}]`}, "same name"},
		"legacy off":        {map[string]string{"ratchet.primary": "true"}, `ratchet: "true"`},
		"pair names nobody": {map[string]string{"ratchet": "true", "ratchet.primary": "false"}, "ratchet.pair_name"},
		"pair names itself": {map[string]string{"ratchet": "true", "ratchet.pair_name": "r1"}, "ratchet.pair_name"},
		"legacy bad name":   {map[string]string{"ratchet": "true", "ratchet.primary": "true", "ratchet.pair_name": "r2", "ratchet.local_ifname": "in1", "ratchet.pair_ifname": "x~y|z"}, "ratchet.pair_ifname"},
		"bar in name":       {map[string]string{"ratchet.cni.dev/links": `[{"name":"x~y|z","peer":{"pod":"r2","name":"z"}}]`}, "links[0].name"},
		"tilde in peer":     {map[string]string{"ratchet.cni.dev/links": `[{"name":"x","peer":{"pod":"r2","name":"y~z"}}]`}, "links[0].peer.name"},
		"legacy other name": {map[string]string{"ratchet": "true", "ratchet.pod_name": "r9"}, "ratchet.pod_name"},
		"legacy no pair":    {map[string]string{"ratchet": "true", "ratchet.primary": "true", "ratchet.local_ifname": "in1", "ratchet.pair_ifname": "in2"}, "ratchet.pair_name"},
		"legacy bad ip":     {map[string]string{"ratchet": "true", "ratchet.primary": "true", "ratchet.pair_name": "r2", "ratchet.local_ifname": "in1", "ratchet.pair_ifname": "in2", "ratchet.local_ip": "x.y"}, "ratchet.local_ip"},
	} {
		_, err := topology.Declared(c.ann, self, topology.Rules{LegacyKeys: true, MaxLinks: 3})
		var e *types.Error
		if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, c.want) {
			t.Errorf("%s: %v, want code 7 mentioning %q", name, err, c.want)
		}
	}
}

func TestLegacyPrimary(t *testing.T) {
	d, err := topology.Declared(map[string]string{
		"ratchet": "true", "ratchet.pod_name": "r1", "ratchet.primary": "true", "ratchet.pair_name": "r2",
		"ratchet.local_ip": "192.0.2.100", "ratchet.local_ifname": "in1", "ratchet.pair_ip": "2001:db8::2", "ratchet.pair_ifname": "in2",
	}, self, topology.Rules{LegacyKeys: true, MaxLinks: 10})
	if err != nil {
		t.Fatal(err)
	}
	l := d.Links[0]
	// A primary consents to no other primary's link.
	if d.LegacyConsent || d.LegacyPrimary != "" || l.Spec.Name != "in1" || l.Spec.IPs[0] != "192.0.2.100/24" || l.Peer.String() != "lab/r2" ||
		l.PeerEnd == nil || l.PeerEnd.Name != "in2" || l.PeerEnd.IPs[0] != "2001:db8::2/64" {
		t.Fatalf("%+v %+v", l, l.PeerEnd)
	}
	// Ratchet's example pair (ratchet: "true", ratchet.pod_name,
	// ratchet.primary: "false") with the primary it consents to named.
	pair, err := topology.Declared(map[string]string{"ratchet": "true", "ratchet.pod_name": "r1", "ratchet.primary": "false", "ratchet.pair_name": "r2"}, self, topology.Rules{LegacyKeys: true, MaxLinks: 10})
	if err != nil || !pair.LegacyConsent || pair.LegacyPrimary != "lab/r2" || len(pair.Links) != 0 {
		t.Fatalf("pair: %+v %v", pair, err)
	}
}

// TestLegacyKeysNeedOptIn: without legacyKeys in the network config, any of
// Ratchet's keys is refused with code 7 naming it, whatever its value.
func TestLegacyKeysNeedOptIn(t *testing.T) {
	for _, key := range []string{"ratchet", "ratchet.pod_name", "ratchet.primary", "ratchet.pair_name",
		"ratchet.local_ifname", "ratchet.local_ip", "ratchet.pair_ifname", "ratchet.pair_ip"} {
		for _, v := range []string{"true", "false", ""} {
			_, err := topology.Declared(map[string]string{key: v}, self, topology.Rules{MaxLinks: 10})
			var e *types.Error
			if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "annotation "+key+" ") || !strings.Contains(e.Msg, "legacyKeys") {
				t.Errorf("%s=%q without legacyKeys: %v, want code 7 naming the key and legacyKeys", key, v, err)
			}
		}
	}
	// The links annotation shares the "ratchet." prefix and is not one of them.
	if _, err := topology.Declared(map[string]string{"ratchet.cni.dev/links": `[]`}, self, topology.Rules{MaxLinks: 10}); err != nil {
		t.Fatal(err)
	}
}

func TestReverse(t *testing.T) {
	rules := topology.Rules{MaxLinks: 10}
	a := topology.PodID{Namespace: "lab", Name: "a"}
	b := topology.PodID{Namespace: "lab", Name: "b"}
	da, err := topology.Declared(map[string]string{topology.LinksAnnotation: `[{"name":"e1","peer":{"pod":"b","name":"w1"}}]`}, a, rules)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		links string
		ok    bool
		why   string
	}{
		{`[{"name":"w1","ips":["192.0.2.2/24"],"peer":{"pod":"a","name":"e1"}}]`, true, ""},
		{`[]`, false, "pod lab/b declares no link w1"},
		{`[{"name":"w1","peer":{"pod":"c","name":"e1"}}]`, false, "pod lab/b links its w1 to lab/c:e1, not to lab/a:e1"},
		{`[{"name":"w1","peer":{"pod":"a","name":"e2"}}]`, false, "pod lab/b links its w1 to lab/a:e2, not to lab/a:e1"},
	}
	for _, c := range cases {
		db, err := topology.Declared(map[string]string{topology.LinksAnnotation: c.links}, b, rules)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, why := db.Reverse(a, da.Links[0])
		if ok != c.ok || why != c.why {
			t.Errorf("%s: Reverse = %v %q, want %v %q", c.links, ok, why, c.ok, c.why)
		}
		if ok && (got.Spec.Name != "w1" || got.Peer != a || len(got.Spec.IPs) != 1) {
			t.Errorf("%s: Reverse returned %+v", c.links, got)
		}
	}
}
