package ctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/pkg/link"
)

// podAnnotations is the capability under which runtimes pass pod
// annotations to plugins.
const podAnnotations = "io.kubernetes.cri.pod-annotations"

var validName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$`)

// attachment is one network config applied to the run's namespace.
type attachment struct {
	file string
	list *libcni.NetworkConfigList
	rt   *libcni.RuntimeConf
}

// run is the docker-run.sh replacement, with no Docker: a new netns, every
// network config in the conf dir applied through libcni (the n-th with
// CNI_IFNAME eth<n>, as the CNI repo's exec-plugins.sh does), CMD run inside
// it, then DEL in reverse order and the netns removed, also on Ctrl-C.
func run(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("run")
	confDir := fs.String("conf-dir", envOr("NETCONFPATH", "/etc/cni/net.d"), "network configs")
	binDir := fs.String("bin-dir", envOr("CNI_PATH", "/opt/cni/bin"), "plugin binaries (a colon-separated list)")
	name := fs.String("name", "", "container id, pod name and netns name")
	podNamespace := fs.String("namespace", "default", "pod namespace passed in CNI_ARGS")
	var annotationFlags multiFlag
	fs.Var(&annotationFlags, "annotation", "pod annotation K=V (repeatable)")
	keep := fs.Bool("keep", false, "keep the netns and its attachments after CMD exits")
	del := fs.Bool("del", false, "undo a run kept with --keep (needs --name)")
	if err := parseFlags(fs, args); err != nil {
		return 0, err
	}
	command := fs.Args()
	switch {
	case *del && (*name == "" || len(command) > 0 || *keep):
		return 0, badArg("--del takes --name and no command (and no --keep)")
	case !*del && len(command) == 0:
		return 0, badArg("no command: ratchetctl run [flags] -- CMD [ARGS]")
	}
	if *name == "" {
		*name = "ratchetctl-" + randomHex(4)
	}
	if !validName.MatchString(*name) {
		return 0, badArg("--name %q: want lower-case letters, digits, '-' and '.', at most 63", *name)
	}
	if !validName.MatchString(*podNamespace) {
		return 0, badArg("--namespace %q: not a Kubernetes namespace name", *podNamespace)
	}
	annotations := map[string]string{}
	for _, a := range annotationFlags {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return 0, badArg("--annotation %q: want KEY=VALUE", a)
		}
		annotations[k] = v
	}
	lists, err := loadNetworks(*confDir)
	if err != nil {
		return 0, err
	}
	cni := libcni.NewCNIConfig(filepath.SplitList(*binDir), nil)
	ctx := context.Background()
	path := filepath.Join(link.NetnsDir, *name)
	// A runtime passes the pod's annotations at DEL as at ADD, and the
	// plugin trusts them: annotations declaring no link mean that ADD made
	// nothing. --del does not know what the kept run was given, so unless
	// --annotation says it again it passes none, and the plugin reads its
	// store instead.
	var capabilities map[string]any
	if !*del || len(annotationFlags) > 0 {
		capabilities = map[string]any{podAnnotations: annotations}
	}
	runtimeConf := func(i int) *libcni.RuntimeConf {
		return &libcni.RuntimeConf{
			ContainerID: *name, NetNS: path, IfName: fmt.Sprintf("eth%d", i),
			Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", *podNamespace},
				{"K8S_POD_NAME", *name}, {"K8S_POD_INFRA_CONTAINER_ID", *name}},
			CapabilityArgs: capabilities,
		}
	}
	var attached []attachment
	cleanup := func() {
		for i := len(attached) - 1; i >= 0; i-- {
			a := attached[i]
			if err := cni.DelNetworkList(ctx, a.list, a.rt); err != nil {
				fmt.Fprintf(stderr, "ratchetctl run: DEL %s (%s): %v\n", a.list.Name, a.rt.IfName, err)
			}
		}
		if err := link.DeleteNamedNetns(*name); err != nil {
			fmt.Fprintf(stderr, "ratchetctl run: remove netns %s: %v\n", *name, err)
		}
	}
	if *del {
		for i, f := range lists {
			attached = append(attached, attachment{file: f.file, list: f.list, rt: runtimeConf(i)})
		}
		cleanup()
		return 0, nil
	}

	if path, err = link.CreateNamedNetns(*name); err != nil {
		return 0, fmt.Errorf("create netns %s: %w", *name, err)
	}
	// Runtimes bring lo up (containerd's CRI with the loopback plugin); a
	// command expects a working 127.0.0.1.
	if err := link.SetLoopbackUp(path); err != nil {
		cleanup()
		return 0, err
	}

	// Ctrl-C while plugins or CMD run must still end in cleanup.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	for i, f := range lists {
		a := attachment{file: f.file, list: f.list, rt: runtimeConf(i)}
		res, err := cni.AddNetworkList(ctx, a.list, a.rt)
		if err != nil {
			// As a runtime does, DEL the network whose ADD failed too.
			attached = append(attached, a)
			cleanup()
			return 0, fmt.Errorf("ADD %s (%s, %s): %w", a.list.Name, a.rt.IfName, filepath.Base(f.file), err)
		}
		attached = append(attached, a)
		out, _ := json.MarshalIndent(res, "", "  ")
		fmt.Fprintf(stderr, "ratchetctl run: %s on %s (%s):\n%s\n", a.list.Name, a.rt.IfName, filepath.Base(f.file), out)
	}

	status, err := runIn(path, command, stdout, stderr, signals)
	if *keep {
		fmt.Fprintf(stderr, "ratchetctl run: kept netns %s at %s with its attachments; undo with: ratchetctl run --del --name %s --namespace %s --conf-dir %s --bin-dir %s\n", *name, path, *name, *podNamespace, *confDir, *binDir)
		return status, err
	}
	cleanup()
	return status, err
}

// runIn starts command inside the netns at path (the child inherits the
// calling thread's namespace) and waits, passing signals on.
func runIn(path string, command []string, stdout, stderr io.Writer, signals <-chan os.Signal) (int, error) {
	target, err := ns.GetNS(path)
	if err != nil {
		return 0, err
	}
	defer target.Close()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := target.Do(func(ns.NetNS) error { return cmd.Start() }); err != nil {
		return 0, fmt.Errorf("start %s: %w", command[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return 128 + int(ws.Signal()), nil
				}
				return exit.ExitCode(), nil
			}
			return 0, err
		}
	}
}

type network struct {
	file string
	list *libcni.NetworkConfigList
}

// loadNetworks reads every config in dir, in the order runtimes use (by
// file name); any unreadable one is an error before anything is made.
func loadNetworks(dir string) ([]network, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, badArg("--conf-dir %s: %v", dir, err)
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, badArg("--conf-dir %s: no network configs (*.conf, *.conflist, *.json)", dir)
	}
	var nets []network
	for _, f := range files {
		var list *libcni.NetworkConfigList
		if strings.HasSuffix(f, ".conflist") {
			list, err = libcni.ConfListFromFile(f)
		} else {
			var conf *libcni.PluginConfig
			if conf, err = libcni.ConfFromFile(f); err == nil {
				list, err = libcni.ConfListFromConf(conf)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		nets = append(nets, network{file: f, list: list})
	}
	return nets, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
