package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseEndpoints(t *testing.T) {
	for in, want := range map[string][]string{
		"http://a:2379":                       {"http://a:2379"},
		"http://a:2379, http://b:2379,":       {"http://a:2379", "http://b:2379"},
		`["https://a:2379","https://b:2379"]`: {"https://a:2379", "https://b:2379"},
	} {
		got, err := parseEndpoints(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseEndpoints(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := parseEndpoints(`["a",`); err == nil {
		t.Error("a broken JSON array was accepted")
	}
}

func TestMainRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	noEndpoints := write("a.conflist", `{"cniVersion":"1.1.0","name":"lab","plugins":[
		{"type":"ptp"},
		{"type":"ratchet","store":{"type":"etcd"},"node":{"name":"n1"}}]}`)
	badPrefix := write("b.conf", `{"cniVersion":"1.1.0","name":"lab","type":"ratchet",
		"store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"],"insecure":true,"prefix":"ratchet"}}`)
	plaintext := write("c.conf", `{"cniVersion":"1.1.0","name":"lab","type":"ratchet",
		"store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"]}}`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"--config", noEndpoints}, "store.endpoints"},
		{[]string{"--config", badPrefix}, "store.prefix"},
		{[]string{"--config", badPrefix, "--prefix", "/ok", "--vxlan-port", "70000"}, "vxlan.port"},
		{[]string{"--etcd-endpoints", `["x",`}, "--etcd-endpoints"},
		{[]string{"--config", plaintext}, "store.endpoints"},
		{[]string{"--etcd-endpoints", "192.0.2.1:2379", "--node", "n1"}, "store.endpoints"},
		{[]string{"--config", plaintext, "--etcd-insecure", "--underlay-cidrs", "192.0.2.0/24,nonsense"}, "vxlan.underlayCIDRs"},
		{[]string{"--config", plaintext, "--etcd-insecure", "--underlay-cidrs", "198.51.100.0/24", "--vtep-ip", "192.0.2.7"}, "node.vtepIP"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--etcd-endpoints", "http://192.0.2.1:2379", "--etcd-insecure", "--node", "n1", "--health-interval", "0s"}, "--health-interval"},
		{[]string{"--etcd-endpoints", "http://192.0.2.1:2379", "--etcd-insecure", "--node", "n1", "--web-addr", ":9098"}, "--web-remote"},
		{[]string{"--etcd-endpoints", "http://192.0.2.1:2379", "--etcd-insecure", "--node", "n1", "--web-control"}, "need --web-addr"},
		{[]string{"--node", "n1", "--metrics-addr", "9100"}, "--metrics-addr"},
		{[]string{"--node", "n1", "--metrics-addr", "127.0.0.1:99999"}, "--metrics-addr"},
		{[]string{"--node", "n1", "--health-addr", "localhost:http"}, "--health-addr"},
		{[]string{"--node", "n1", "--etcd-ca", "/ca.pem"}, "--etcd-ca needs --etcd-endpoints"},
		{[]string{"--node", "n1", "--store-dir", "relative"}, "store.dir"},

		{[]string{"--etcd-endpoints", "http://192.0.2.1:2379", "--etcd-insecure", "--node", "n1", "--kubeconfig", filepath.Join(dir, "missing")}, "--kubeconfig"},
		{[]string{"--etcd-endpoints", "http://192.0.2.1:2379", "--etcd-insecure", "--node", "n1", "--kubeconfig", noEndpoints}, "--kubeconfig"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("ratchetd %q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
		if strings.HasPrefix(c.want, "--") && strings.Count(strings.TrimSuffix(stderr.String(), "\n"), "\n") != 0 {
			t.Errorf("ratchetd %q: want a one-line error, got %q", c.args, stderr.String())
		}
	}
}

func TestReadNetConfTakesTheRatchetEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "10-lab.conflist")
	if err := os.WriteFile(path, []byte(`{"cniVersion":"1.1.0","name":"lab","plugins":[
		{"type":"ptp","ipam":{"type":"static"}},
		{"type":"ratchet","store":{"type":"etcd","endpoints":["http://192.0.2.1:2379"],"insecure":true,"prefix":"/lab"},"node":{"name":"n7","vtepDev":"eth1"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := readNetConf(path)
	if err != nil {
		t.Fatal(err)
	}
	if conf.Node.Name != "n7" || conf.Node.VtepDev != "eth1" || conf.Store.Prefix != "/lab" || len(conf.Store.Endpoints) != 1 {
		t.Fatalf("read %+v %+v", conf.Node, conf.Store)
	}
}

// TestReadNetConfOfConfDir: given the CNI conf dir, ratchetd reads the
// ratchet entry the runtime uses: the first config file, by name, with
// one; files without one (or that do not parse) are passed over.
func TestReadNetConfOfConfDir(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"05-broken.conflist": `{`,
		"08-other.conf":      `{"cniVersion":"1.1.0","name":"other","type":"bridge"}`,
		"10-k8s.conflist": `{"cniVersion":"1.1.0","name":"k8s","plugins":[{"type":"ptp"},
			{"type":"ratchet","allowCrossNamespace":true,"maxLinksPerPod":3}]}`,
		"20-later.conflist": `{"cniVersion":"1.1.0","name":"later","plugins":[{"type":"ratchet","maxLinksPerPod":9}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf, err := readNetConf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !conf.AllowCrossNamespace || conf.MaxLinksPerPod != 3 {
		t.Errorf("read allowCrossNamespace %v, maxLinksPerPod %d; want 10-k8s.conflist's true, 3", conf.AllowCrossNamespace, conf.MaxLinksPerPod)
	}
	if _, err := readNetConf(t.TempDir()); err == nil || !strings.Contains(err.Error(), "ratchetctl install") {
		t.Errorf("readNetConf of a dir without a ratchet entry: %v", err)
	}
}

func TestCheckWebAddr(t *testing.T) {
	for _, c := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:9098", false, true},
		{"[::1]:9098", false, true},
		{"localhost:9098", false, true},
		{":9098", false, false},
		{"0.0.0.0:9098", false, false},
		{"192.0.2.1:9098", false, false},
		{"node-a.example:9098", false, false},
		{"192.0.2.1:9098", true, true},
		{":9098", true, true},
		{"127.0.0.1", false, false},
	} {
		if err := checkWebAddr(c.addr, c.remote); (err == nil) != c.ok {
			t.Errorf("checkWebAddr(%q, %v) = %v, want ok %v", c.addr, c.remote, err, c.ok)
		}
	}
}
