package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/ratchet-cni/ratchet/internal/agent"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/store/etcdstore"
	"github.com/ratchet-cni/ratchet/internal/web"
)

const usage = `ratchetd: ratchet's node agent.

With etcd (multi-node clusters), it holds the node's etcd connection and a
watch, answers the plugin on a unix socket, and makes VXLAN tunnels for pod
links whose peers are on other nodes. Run one on each node, as root, in the
node's network namespace.

Without etcd endpoints (no --etcd-endpoints, and a config whose store.type
is "local" or unset), it runs on a single node's local store only: no
tunnels and no socket, but its health endpoints and metrics
(--metrics-addr) serve that node's links.

Usage: ratchetd [--config FILE] [flags]

--config takes the CNI network config (.conf or .conflist) of the ratchet
network, or the CNI conf dir holding it (the first config file with a
ratchet entry, as the runtime orders them): its store, node and vxlan
settings, and the rules and limits (allowCrossNamespace, maxLinksPerPod,
...) that annotation edits are applied with. Flags override it.
`

// DefaultMetricsAddr is the address the docs suggest for --metrics-addr:
// the node's loopback, next to the health endpoints. The flag is off
// unless given.
const DefaultMetricsAddr = "127.0.0.1:9100"

// run runs ratchetd with command-line args until SIGINT or SIGTERM and
// returns its exit code.
func run(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runCtx(ctx, args, stderr, nil)
}

// runCtx runs ratchetd until ctx ends; started, when not nil, is told
// where each HTTP address listens once the agent runs. It is where the
// agent gets its etcd registry (or none, on the local store only): the
// agent itself knows only the store's interfaces.
func runCtx(ctx context.Context, args []string, stderr io.Writer, started func(map[string]net.Addr)) int {
	fs := flag.NewFlagSet("ratchetd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	var (
		configFile = fs.String("config", "", "CNI network config of the ratchet network")
		node       = fs.String("node", "", "node name (default: the config's node.name, else the hostname)")
		endpoints  = fs.String("etcd-endpoints", "", "etcd endpoints: comma-separated, or a JSON array")
		prefix     = fs.String("prefix", "", "etcd key prefix (default /ratchet)")
		ca         = fs.String("etcd-ca", "", "etcd CA certificate")
		cert       = fs.String("etcd-cert", "", "etcd client certificate")
		key        = fs.String("etcd-key", "", "etcd client key")
		insecure   = fs.Bool("etcd-insecure", false, "allow plaintext etcd endpoints (http://), as store.insecure")
		underlay   = fs.String("underlay-cidrs", "", "comma-separated prefixes every node's VTEP must be in, as vxlan.underlayCIDRs")
		timeout    = fs.Duration("timeout", 0, "timeout of each etcd call (default 5s)")
		storeDir   = fs.String("store-dir", "", "the node's local store, as the plugin's store.dir")
		socket     = fs.String("socket", "", "unix socket for the plugin (default "+netconf.DefaultAgentSocket+")")
		vtepDev    = fs.String("vtep-dev", "", "underlay device (default: the default route's)")
		vtepIP     = fs.String("vtep-ip", "", "underlay address (default: the device's first)")
		port       = fs.Int("vxlan-port", 0, "VXLAN UDP port (default "+strconv.Itoa(netconf.DefaultVXLANPort)+")")
		vniRange   = fs.String("vni-range", "", "VNI range FIRST-LAST (default "+netconf.DefaultVNIRange+")")
		mtu        = fs.Int("mtu", 0, "tunnel MTU (default: the underlay's less 50, or 70 over IPv6)")
		resync     = fs.Duration("resync", 30*time.Second, "how often to check every tunnel again")
		logLevel   = fs.String("log-level", "info", "debug, info, warn or error")
		noFilter   = fs.Bool("no-tunnel-filter", false, "run without the nftables filter that lets only registered nodes reach the VXLAN port\n(only where the kernel has no nf_tables: anyone who reaches the port can then inject frames)")
		healthAddr = fs.String("health-addr", DefaultHealthAddr, "address of the /healthz and /readyz HTTP endpoints (empty: none)")
		healthIvl  = fs.Duration("health-interval", 5*time.Second, "how often to check etcd and the parking namespace")
		webAddr    = fs.String("web-addr", "", "address of the live topology page, e.g. 127.0.0.1:9098 (empty: none; loopback only unless --web-remote)")
		webRemote  = fs.Bool("web-remote", false, "allow a --web-addr that is not loopback (the page has no authentication)")
		webControl = fs.Bool("web-control", false, "let the page pull and plug cables, as ratchetctl link down|up (default: read-only)")
		metrics    = fs.String("metrics-addr", "", "address of the Prometheus /metrics endpoint, e.g. "+DefaultMetricsAddr+" (empty: none);\nthe series name pods and links: give a non-loopback address only where that may be seen")

		kubeconfig = fs.String("kubeconfig", "", "report pod links to Kubernetes and apply edits of their annotation: a kubeconfig file,\nor \"in-cluster\" for the pod's service account (empty: no Kubernetes; docs/kubernetes.md)")
	)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	conf := &netconf.NetConf{}
	if *configFile != "" {
		var err error
		if conf, err = readNetConf(*configFile); err != nil {
			fmt.Fprintln(stderr, "ratchetd:", err)
			return 2
		}
	} else {
		conf, _ = netconf.Decode([]byte(`{"type":"ratchet"}`))
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&conf.Node.Name, *node)
	set(&conf.Store.Prefix, *prefix)
	set(&conf.Store.Dir, *storeDir)
	set(&conf.Store.AgentSocket, *socket)
	set(&conf.Node.VtepDev, *vtepDev)
	set(&conf.Node.VtepIP, *vtepIP)
	set(&conf.VXLAN.VNIRange, *vniRange)
	if *endpoints != "" {
		eps, err := parseEndpoints(*endpoints)
		if err != nil {
			fmt.Fprintln(stderr, "ratchetd: --etcd-endpoints:", err)
			return 2
		}
		conf.Store.Endpoints = eps
	}
	if *ca != "" || *cert != "" || *key != "" {
		conf.Store.TLS = &netconf.TLS{CA: *ca, Cert: *cert, Key: *key}
	}
	if *timeout != 0 {
		conf.Store.Timeout = timeout.String()
	}
	if *insecure {
		conf.Store.Insecure = true
	}
	if *underlay != "" {
		conf.VXLAN.UnderlayCIDRs = nil
		for _, p := range strings.Split(*underlay, ",") {
			if p = strings.TrimSpace(p); p != "" {
				conf.VXLAN.UnderlayCIDRs = append(conf.VXLAN.UnderlayCIDRs, p)
			}
		}
	}
	if *port != 0 {
		conf.VXLAN.Port = *port
	}
	if *mtu != 0 {
		conf.VXLAN.MTU = *mtu
	}
	// Local mode: no etcd named anywhere. A config that asks for etcd
	// without endpoints is refused below, as before.
	local := conf.Store.Type == "local" && len(conf.Store.Endpoints) == 0
	if local {
		for name, given := range map[string]bool{"--etcd-ca": *ca != "", "--etcd-cert": *cert != "", "--etcd-key": *key != "", "--etcd-insecure": *insecure} {
			if given {
				fmt.Fprintf(stderr, "ratchetd: %s needs --etcd-endpoints (without etcd, ratchetd runs on the local store only)\n", name)
				return 2
			}
		}
	} else {
		conf.Store.Type = "etcd"
	}
	if err := netconf.ValidateAgent(conf); err != nil {
		fmt.Fprintln(stderr, "ratchetd:", err)
		return 2
	}
	if *healthIvl <= 0 || *resync <= 0 {
		fmt.Fprintln(stderr, "ratchetd: --health-interval and --resync must be positive")
		return 2
	}
	if *webAddr != "" {
		if err := checkWebAddr(*webAddr, *webRemote); err != nil {
			fmt.Fprintln(stderr, "ratchetd:", err)
			return 2
		}
	} else if *webControl || *webRemote {
		fmt.Fprintln(stderr, "ratchetd: --web-control and --web-remote need --web-addr")
		return 2
	}
	for flag, addr := range map[string]string{"--health-addr": *healthAddr, "--metrics-addr": *metrics} {
		if err := checkAddr(addr); err != nil {
			fmt.Fprintf(stderr, "ratchetd: %s %q: %v\n", flag, addr, err)
			return 2
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "ratchetd: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var kc kubernetes.Interface
	if *kubeconfig != "" {
		var err error
		if kc, err = kubeClient(*kubeconfig, conf.Node.Name); err != nil {
			fmt.Fprintln(stderr, "ratchetd: --kubeconfig:", err)
			return 2
		}
	}

	first, last, _ := netconf.ParseVNIRange(conf.VXLAN.VNIRange)
	cfg := agent.Config{
		Node: conf.Node.Name, Prefix: conf.Store.Prefix,
		VtepDev: conf.Node.VtepDev, VtepIP: net.ParseIP(conf.Node.VtepIP),
		Port: conf.VXLAN.Port, MTU: conf.VXLAN.MTU,
		VNIFirst: uint32(first), VNILast: uint32(last),
		StoreDir: conf.Store.Dir, Socket: conf.Store.AgentSocket,
		Resync: *resync, CallTimeout: conf.Store.CallTimeout(), HealthInterval: *healthIvl, Log: log,
		NoFirewall: *noFilter,
	}
	var reg agent.Registry
	if !local {
		underlayPrefixes, _ := conf.VXLAN.Underlay() // validated above
		ecfg := etcdstore.Config{Endpoints: conf.Store.Endpoints, Prefix: conf.Store.Prefix, Timeout: conf.Store.CallTimeout(),
			Insecure: conf.Store.Insecure, Underlay: underlayPrefixes, Log: log}
		if t := conf.Store.TLS; t != nil {
			ecfg.CA, ecfg.Cert, ecfg.Key = t.CA, t.Cert, t.Key
		}
		etcd, err := etcdstore.Open(ecfg)
		if err != nil {
			log.Error("etcd", "error", err)
			return 1
		}
		defer etcd.Close()
		reg = etcd
	}
	a, err := agent.New(cfg, reg)
	if err != nil {
		log.Error("agent", "error", err)
		return 1
	}

	// Every HTTP endpoint is mounted here, on its flag's address.
	var servers httpEndpoints
	health := healthHandler(a.Health)
	servers.mount("--health-addr", *healthAddr, "/healthz", health)
	servers.mount("--health-addr", *healthAddr, "/readyz", health)
	if *metrics != "" {
		servers.mount("--metrics-addr", *metrics, "/metrics", metricsHandler(conf.Node.Name, conf.Store.Dir, !local, a.Stats, log))
	}
	if *webAddr != "" {
		opts := web.Options{Log: log}
		if *webControl {
			opts.Control = web.CtlControl{Dir: conf.Store.Dir, Socket: conf.Store.AgentSocket}
		}
		mountWeb(&servers, *webAddr, !*webRemote, web.New(web.StoreSource{Dir: conf.Store.Dir, Node: conf.Node.Name}, opts))
	}
	lns, err := servers.listen()
	if err != nil {
		log.Error("http", "error", err)
		return 1
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done := servers.serve(ctx, lns, log)
	// Stopped before it is waited for, however Run ends.
	defer func() {
		stop()
		<-done
	}()
	ready := func() {
		if started != nil {
			addrs := map[string]net.Addr{}
			for addr, ln := range lns {
				addrs[addr] = ln.Addr()
			}
			started(addrs)
		}
	}
	if kc != nil {
		kctx, cancel := context.WithCancel(ctx)
		done := startKube(kctx, kc, conf, log)
		// Stopped and waited for however Run ends.
		defer func() {
			cancel()
			<-done
		}()
	}
	if err := a.Run(ctx, ready); err != nil {
		log.Error("agent", "error", err)
		return 1
	}
	return 0
}

// checkAddr checks a host:port address before ratchetd listens on it, so
// that a typo is a one-line usage error; empty is off.
func checkAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// readNetConf reads the ratchet entry of a .conf or .conflist file, or,
// given a directory (the node's CNI conf dir, where `ratchetctl install`
// chained ratchet), of the first config file in it, in the order the
// runtimes read them, that has one: the entry the plugin runs with, so
// that ratchetd applies annotation edits with the same rules and limits.
func readNetConf(path string) (*netconf.NetConf, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		raw, err := ratchetEntry(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if raw == nil {
			raw = data // a .conf of another type: Decode says what is wrong
		}
		return decodeNetConf(path, raw)
	}
	ents, err := os.ReadDir(path) // sorted by name, as the runtimes sort
	if err != nil {
		return nil, err
	}
	for _, ent := range ents {
		// The extensions the runtimes (and internal/install, not linked
		// here: it brings libcni) read as network configs.
		if ext := filepath.Ext(ent.Name()); ent.IsDir() || ext != ".conf" && ext != ".conflist" && ext != ".json" {
			continue
		}
		f := filepath.Join(path, ent.Name())
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		// A file that does not parse is not ratchet's: the runtime
		// skips it too.
		if raw, err := ratchetEntry(data); err == nil && raw != nil {
			return decodeNetConf(f, raw)
		}
	}
	return nil, fmt.Errorf("%s: no CNI config there has a %q entry (run ratchetctl install first)", path, pluginType)
}

// pluginType is the CNI type of ratchet's entry.
const pluginType = "ratchet"

// ratchetEntry returns the ratchet entry of a conflist, or a .conf's
// whole content if its type is ratchet; nil if it has none.
func ratchetEntry(data []byte) (json.RawMessage, error) {
	var list struct {
		Type    string            `json:"type"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, err
	}
	if list.Type == pluginType {
		return data, nil
	}
	for _, p := range list.Plugins {
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(p, &t) == nil && t.Type == pluginType {
			return p, nil
		}
	}
	return nil, nil
}

func decodeNetConf(path string, data []byte) (*netconf.NetConf, error) {
	conf, err := netconf.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return conf, nil
}

// parseEndpoints reads a comma-separated list or a JSON array: the same
// value can then feed the plugin's store.endpoints and this flag.
func parseEndpoints(s string) ([]string, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		var eps []string
		if err := json.Unmarshal([]byte(s), &eps); err != nil {
			return nil, err
		}
		return eps, nil
	}
	var eps []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return eps, nil
}
